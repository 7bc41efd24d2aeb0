"""``surveillance feed``: publish a historical feed file into the input topic."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click


@click.command("feed")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lobster", "normalized", "databento", "bitstamp"]),
    default="normalized",
    show_default=True,
    help="lobster: vendor zip or message CSV; normalized: JSONL or Parquet; databento: DBN "
    "MBO (.dbn, .dbn.zst); bitstamp: live-orders log (.log, .log.bz2).",
)
@click.option(
    "--speed",
    default="max",
    show_default=True,
    help="Replay speed: 100x compresses 100 s of market time into 1 s; max: no pacing.",
)
@click.option("--bootstrap", default=None, help="Broker host:port [env SURV_BOOTSTRAP].")
@click.option("--topic", default=None, help="Input topic [default: {SURV_TOPIC_PREFIX}.events].")
@click.option(
    "--end-of-stream/--no-end-of-stream",
    default=True,
    show_default=True,
    help="After the file, tell the worker each instrument's feed has ended.",
)
@click.option(
    "--create-topic/--no-create-topic",
    default=True,
    show_default=True,
    help="Create the topic with SURV_PARTITIONS partitions if missing (a producer-created "
    "topic would get the broker's default count).",
)
@click.option(
    "--instrument",
    default=None,
    help="Publish only this instrument (symbol or venue id) of a file that holds several (a "
    "DBN file); by default all of them, merged in event-time order.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report.")
def command(
    path: Path,
    fmt: str,
    speed: str,
    bootstrap: str | None,
    topic: str | None,
    end_of_stream: bool,
    create_topic: bool,
    instrument: str | None,
    as_json: bool,
) -> None:
    """Publish a historical feed file into the input topic, keyed by instrument.

    Event times are replayed compressed by the speed factor; records are batched. Each
    instrument's metadata (tick, price scale, session), when the format carries it, goes out
    first as a control record: the worker's windows for it follow the venue.
    """
    from streams.publisher import parse_speed, publish_file
    from streams.settings import load_settings
    from streams.topics import TopicError, TopicNames, TopicSpec, ensure_topics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        factor = parse_speed(speed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--speed") from None
    if not path.exists():
        raise click.ClickException(f"no such file: {path}")
    settings = load_settings(bootstrap=bootstrap)
    target = topic or TopicNames.for_prefix(settings.topic_prefix).events
    from streams.broker import BrokerError

    try:
        if create_topic:
            ensure_topics(
                settings.bootstrap,
                [TopicSpec(target, settings.partitions)],
                timeout_s=settings.topics_timeout_s,
            )
        report = publish_file(
            path,
            fmt=fmt,  # type: ignore[arg-type]
            bootstrap=settings.bootstrap,
            topic=target,
            speed=factor,
            end_of_stream_records=end_of_stream,
            broker_timeout_s=settings.topics_timeout_s,
            instrument=instrument,
        )
    except (BrokerError, TopicError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        rate = report.events_per_s
        click.echo(
            f"published {report.events} events ({report.instruments} instrument(s)) to "
            f"{report.topic} in {report.seconds:.2f} s"
            + (f" ({rate:,.0f} events/s)" if rate else "")
        )
