"""``surveillance replay``: historical files through the detection pipeline, offline."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from surveillance.cli.options import rollouts_option, sampling_options, sampling_settings

if TYPE_CHECKING:
    from surveillance.detection.detector import Calibration


@click.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lobster", "normalized"]),
    default="lobster",
    show_default=True,
    help="Input format.",
)
@click.option("--window", default="25m", show_default=True, help="Window length (25m, 90s, 1h).")
@rollouts_option()
@click.option("--seed", default=0, show_default=True, help="Seed (same seed, same output).")
@click.option(
    "--generator",
    type=click.Choice(["lmm", "empirical"]),
    default="lmm",
    show_default=True,
    help="Order model: the trained LMM, or i.i.d. empirical flow.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="LMM checkpoint (default: the bundled one).",
)
@sampling_options()
@click.option(
    "--calibration",
    default="auto",
    show_default=True,
    help="Calibration JSON, 'self' (fit on this replay's windows) or 'auto' (the "
    "bundled one fitted for this model and its sampling, else self).",
)
@click.option(
    "--far",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Target false-alarm rate for 'self' calibration.",
)
@click.option(
    "--date",
    "session_date",
    default=None,
    help="Session date (YYYY-MM-DD) for normalized files timed from midnight.",
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="scores.jsonl to write."
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the investigator's HTML report here.",
)
@click.option("--device", default="cpu", show_default=True, help="torch device for the LMM.")
def command(
    paths: tuple[Path, ...],
    fmt: str,
    window: str,
    rollouts: int,
    seed: int,
    generator: str,
    model_path: Path | None,
    temperature: float | tuple[float, ...] | None,
    top_p: float | tuple[float, ...] | None,
    calibration: str,
    far: float,
    session_date: str | None,
    out: Path,
    report: Path | None,
    device: str,
) -> None:
    """Replay historical files through the detection pipeline; one JSON line per window.

    Each window of each file is compared with simulated futures forked at its start; the
    scores, p-values, alerts, per-fact overlaps with their null statistics and the baselines
    go to OUT, and optionally an investigator's report to REPORT.
    """
    sampling = sampling_settings(generator, temperature=temperature, top_p=top_p)
    from surveillance.detection.scorer import SimulationScorer
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.replay import read_input, replay, write_scores
    from surveillance.studies.realism import parse_duration

    date = None
    if session_date is not None:
        try:
            date = dt.date.fromisoformat(session_date)
        except ValueError:
            raise click.BadParameter(f"not a date: {session_date!r}", param_hint="--date") from None
    config = DetectionConfig(window_ns=parse_duration(window), rollouts=rollouts, seed=seed)
    inputs = [read_input(p, fmt, session_date=date) for p in paths]
    scorer = SimulationScorer(
        config,
        generator=generator,
        model_path=str(model_path) if model_path else None,
        device=device,
        sampling=sampling,
    )
    cal, self_far = _calibration(calibration, scorer.model_version, far)
    scorer.calibration = cal
    total = sum(len(i.frame) for i in inputs)
    with click.progressbar(length=total, label="replaying", file=sys.stderr, show_pos=True) as bar:
        result = replay(
            inputs, scorer, progress=lambda n, _: bar.update(n), self_calibrate_far=self_far
        )
    write_scores(out, result.records)
    alerts = sum(bool(r["alert"]) for r in result.records)
    click.echo(
        f"{len(result.records)} windows, {alerts} alerts, {result.events} events"
        f" ({result.malformed_rows} malformed rows skipped) -> {out}"
    )
    if report is not None:
        from surveillance.report import write_report

        meta = {
            "title": "Replay " + ", ".join(sorted({i.instrument for i in inputs})),
            "files": [str(p) for p in paths],
            "window": window,
            "rollouts": rollouts,
            "seed": seed,
            "model_version": scorer.model_version,
            "calibration": _cal_meta(cal, result.records, self_far),
            "malformed_rows": result.malformed_rows,
            "generated_by": "surveillance replay " + shlex.join(sys.argv[2:]),
        }
        write_report(report, result.records, meta)
        click.echo(f"report -> {report}")


def _calibration(
    choice: str, model_version: str, far: float
) -> tuple[Calibration | None, float | None]:
    """(calibration or None, far for self-calibration or None)."""
    from surveillance.detection.detector import Calibration, bundled_calibration

    if choice == "self":
        return None, far
    if choice == "auto":
        found = bundled_calibration(model_version)
        if found is not None:
            return found[1], None
        click.echo(
            "no calibration for this model: fitting the threshold on this replay's own "
            "windows (--calibration self)",
            err=True,
        )
        return None, far
    path = Path(choice)
    if not path.exists():
        raise click.BadParameter(f"no such calibration file: {path}", param_hint="--calibration")
    return Calibration.load(path), None


def _cal_meta(cal, records, self_far):  # type: ignore[no-untyped-def]
    if cal is not None:
        return {
            "threshold": cal.threshold,
            "far": cal.far,
            "n_normal": cal.n_normal,
            "method": cal.method,
            "note": cal.note,
        }
    if self_far is not None and records:
        return {
            "threshold": records[0]["threshold"],
            "far": self_far,
            "n_normal": len(records),
            "method": "self: this replay's own windows",
            "note": "assumes most windows are normal",
        }
    return None
