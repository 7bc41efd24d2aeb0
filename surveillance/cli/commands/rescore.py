"""``surveillance rescore``: a replay's scores read again with another calibration."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("rescore")
@click.argument("scores", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--calibration",
    "calibration_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The calibration file to score with.",
)
@click.option(
    "--session",
    default="09:30-16:00",
    show_default=True,
    help="The venue's continuous session, local HH:MM-HH:MM (the LOBSTER days': NASDAQ's); "
    "00:00-24:00 for a venue that never closes. Windows' time-of-day buckets count from it.",
)
@click.option("--timezone", default="America/New_York", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False))
def command(scores: Path, calibration_path: Path, session: str, timezone: str, out: Path) -> None:
    """Score a replay's windows (SCORES, the scores.jsonl of `replay`) again with another
    calibration, without forking: each window's facts' z against its rollouts are kept, its
    calibrated score, threshold, alert and severity are the new calibration's, in its time of
    day."""
    from simulator.units import NS_PER_DAY, session_bounds
    from surveillance.detection.detector import Calibration
    from surveillance.replay import read_scores, rescore, write_scores

    parts = session.split("-")
    if len(parts) != 2:
        raise click.BadParameter("use HH:MM-HH:MM", param_hint="--session")
    records = read_scores(scores)
    epoch = any(int(r["window_start_ns"]) >= NS_PER_DAY for r in records)
    try:
        bounds = session_bounds(parts[0], parts[1], timezone, epoch=epoch)
    except (ValueError, KeyError) as exc:
        raise click.BadParameter(str(exc), param_hint="--session/--timezone") from None
    cal = Calibration.load(calibration_path)
    new = rescore(records, cal, bounds, str(calibration_path))
    write_scores(out, new)
    alerts = sum(bool(r["alert"]) for r in new)
    click.echo(f"{len(new)} windows, {alerts} alerts, threshold {cal.threshold:.3f} -> {out}")
