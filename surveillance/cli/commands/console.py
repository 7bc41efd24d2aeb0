"""``surveillance console``: serve the compliance console over an alert store."""

from __future__ import annotations

import click


def store_url_of(store: str | None, store_url: str | None) -> str:
    """A store given as a file (``demo-alerts.sqlite``) or as a SQLAlchemy URL."""
    if store_url:
        return store_url
    if store:
        from pathlib import Path

        return f"sqlite:///{Path(store).resolve()}"
    import os

    return os.environ.get("SURV_STORE_URL", "sqlite:///surveillance-alerts.db")


@click.command("console")
@click.option("--store", default=None, help="Alert store file (SQLite), e.g. demo-alerts.sqlite.")
@click.option("--store-url", default=None, help="Alert store URL [env SURV_STORE_URL].")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--secure-cookies/--no-secure-cookies",
    default=False,
    show_default=True,
    help="Mark cookies Secure (serve behind HTTPS, e.g. a TLS-terminating proxy).",
)
def command(
    store: str | None, store_url: str | None, host: str, port: int, secure_cookies: bool
) -> None:
    """Serve the compliance console: inbox, alert pages, case workflow, audit trail, export.

    Binds 127.0.0.1 unless told otherwise. Add users first: surveillance user add NAME --role
    ROLE (the store's schema is migrated to the current version on start).
    """
    import uvicorn

    from alerts.store import AlertStore
    from alerts.workflow import Workflow
    from surveillance.console.app import create_app

    url = store_url_of(store, store_url)
    if store and not store_url:
        from pathlib import Path

        if not Path(store).exists():
            raise click.ClickException(f"no alert store at {store}")
    app = create_app(url, secure_cookies=secure_cookies)
    probe = AlertStore(url)
    try:
        users = Workflow(probe.engine).count_users()
    finally:
        probe.close()
    if users == 0:
        click.echo(
            "note: no console users yet: add one with "
            f"`surveillance user add NAME --role supervisor --store {store or url}`",
            err=True,
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(
            f"warning: serving on {host}: put TLS in front and pass --secure-cookies", err=True
        )
    click.echo(f"console on http://{host}:{port}/ (store {url})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
