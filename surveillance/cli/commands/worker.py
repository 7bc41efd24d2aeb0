"""``surveillance worker``: run the stream worker (faust) until SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging

import click


@click.command("worker")
@click.option("--bootstrap", default=None, help="Broker host:port [env SURV_BOOTSTRAP].")
@click.option("--store-url", default=None, help="Alert store URL [env SURV_STORE_URL].")
@click.option(
    "--scorer",
    default=None,
    help="Window scorer factory 'module:function' taking the settings [env SURV_SCORER].",
)
@click.option("--web-port", type=int, default=None, help="State page port [env SURV_WEB_PORT].")
@click.option(
    "--role",
    type=click.Choice(["both", "ingest", "scorer"]),
    default=None,
    help="both: ingest and score here; ingest: publish closed windows to the windows topic; "
    "scorer: score that topic's windows in batches [env SURV_ROLE; default both].",
)
@click.option(
    "--create-topics/--no-create-topics",
    default=True,
    show_default=True,
    help="Create missing topics with the expected partition counts first.",
)
def command(
    bootstrap: str | None,
    store_url: str | None,
    scorer: str | None,
    web_port: int | None,
    role: str | None,
    create_topics: bool,
) -> None:
    """Run the surveillance stream worker: books, windows, decisions and alerts.

    --role ingest keeps books and windows and publishes closed windows; --role scorer scores
    them (a consumer group of its own: start as many as scoring needs).

    Settings come from SURV_* environment variables (see streams/settings.py); the options
    override them. The worker waits (bounded) for the broker and the topics before joining.
    """
    from pydantic import ValidationError

    from alerts.store import AlertStore
    from streams.app import build_app, load_scorer, load_scorer_factory, run_worker
    from streams.settings import load_settings
    from streams.topics import TopicError, app_topic_specs, ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = load_settings(
            bootstrap=bootstrap, store_url=store_url, scorer=scorer, web_port=web_port, role=role
        )
    except ValidationError as exc:
        raise click.ClickException(f"bad settings: {exc}") from None
    if create_topics:
        try:
            ensure_topics(
                settings.bootstrap, app_topic_specs(settings), timeout_s=settings.topics_timeout_s
            )
        except TopicError as exc:
            raise click.ClickException(str(exc)) from None
    window_scorer = None
    factory = None
    if settings.scorer and settings.role != "ingest":
        try:
            window_scorer = load_scorer(settings.scorer, settings)
            # instruments whose feed sends venue metadata get a scorer of their own
            factory = load_scorer_factory(settings.scorer, settings)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise click.ClickException(f"cannot load scorer {settings.scorer}: {exc}") from None
    if settings.role == "ingest":
        # Books and windows only: the scorer group stores the decisions.
        run_worker(build_app(settings), loglevel=settings.log_level)
        return
    store = AlertStore(settings.store_url)
    store.create_schema()
    if settings.role == "scorer":
        from streams.scorer import run_scorer

        if window_scorer is None:
            raise click.ClickException("--role scorer needs a scorer (SURV_SCORER is none)")
        run_scorer(settings, window_scorer, store, scorer_factory=factory)
        return
    surv = build_app(settings, scorer=window_scorer, store=store, scorer_factory=factory)
    run_worker(surv, loglevel=settings.log_level)
