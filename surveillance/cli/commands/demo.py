"""``surveillance demo``: a real trading day through the whole streaming service, end to end."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from surveillance.cli.options import rollouts_option

TYPOLOGIES = [
    "spoofing",
    "layering",
    "quote_stuffing",
    "momentum_ignition",
    "pump_and_dump",
    "marking_the_close",
]


@click.command("demo")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lobster", "normalized"]),
    default="lobster",
    show_default=True,
    help="Format of PATH.",
)
@click.option(
    "--speed",
    default="300x",
    show_default=True,
    help="Feed speed: 300x plays 300 s of market time per second; max: no pacing.",
)
@click.option(
    "--generator",
    type=click.Choice(["auto", "lmm", "empirical"]),
    default="auto",
    show_default=True,
    help="Order model for the rollouts; auto: the LMM if its checkpoint exists, else empirical.",
)
@rollouts_option()
@click.option("--window", default="25m", show_default=True, help="Window length.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--calibration",
    default="auto",
    show_default=True,
    help="Calibration JSON, 'none', or 'auto' (the bundled one matching the model).",
)
@click.option(
    "--inject",
    type=click.Choice(TYPOLOGIES),
    default=None,
    help="Inject a manipulation campaign into the fed day.",
)
@click.option("--at", "inject_at", default=None, help="Campaign start, HH:MM (default: mid-slice).")
@click.option("--for", "inject_for", default="15m", show_default=True, help="Campaign length.")
@click.option(
    "--intensity",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.0, min_open=True),
    help="Campaign intensity (1 = moderate).",
)
@click.option("--until", default=None, help="Feed the day only up to HH:MM (exchange time).")
@click.option("--max-events", type=click.IntRange(1), default=None, help="Feed at most N events.")
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    default=Path("demo-alerts.sqlite"),
    show_default=True,
    help="SQLite file for alerts and decisions (replaced if it exists).",
)
@click.option("--verbose", is_flag=True, help="Log the broker, topics and publisher.")
def command(
    path: Path | None,
    fmt: str,
    speed: str,
    generator: str,
    rollouts: int,
    window: str,
    seed: int,
    calibration: str,
    inject: str | None,
    inject_at: str | None,
    inject_for: str,
    intensity: float,
    until: str | None,
    max_events: int | None,
    store: Path,
    verbose: bool,
) -> None:
    """Stream a real trading day through the surveillance service and summarize the alerts.

    Starts an embedded Kafka-compatible broker and a worker, feeds PATH (default: the shared
    GOOG 2012-06-21 LOBSTER level-10 day) at an accelerated speed, stores every window's decision
    and the alerts in SQLite, publishes the alerts on the alert topic, prints a summary and stops
    everything it started. Needs no services installed by hand.
    """
    from simulator.units import UnitError, parse_clock, parse_duration
    from streams.publisher import parse_speed
    from surveillance.cli.demo import DemoError, DemoOptions, format_summary, run_demo

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        factor = parse_speed(speed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--speed") from None
    try:
        parse_duration(window)
        parse_duration(inject_for)
        for text in (until, inject_at):
            if text is not None:
                parse_clock(text)
    except UnitError as exc:
        raise click.ClickException(str(exc)) from None
    if inject_at is not None and inject is None:
        raise click.BadParameter("--at needs --inject", param_hint="--at")
    options = DemoOptions(
        path=path,
        fmt=fmt,
        speed=factor,
        generator=generator,
        rollouts=rollouts,
        window=window,
        seed=seed,
        calibration=calibration,
        inject=inject,
        inject_at=inject_at,
        inject_for=inject_for,
        intensity=intensity,
        until=until,
        max_events=max_events,
        store=store,
    )
    try:
        report = run_demo(options, say=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_summary(report))
    if not report.consistent:
        raise click.ClickException("the alert topic and the store disagree (see above)")
