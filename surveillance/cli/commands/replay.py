"""``surveillance replay``: historical files through the detection pipeline, offline."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path

import click

from surveillance.cli.options import detection_options, detection_settings


@click.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lobster", "normalized", "databento", "bitstamp"]),
    default="lobster",
    show_default=True,
    help="Input format (normalized: JSONL or Parquet, with the OUT.meta.json that convert "
    "writes beside it; its tick and price scale go into the detection config).",
)
@detection_options()
@click.option(
    "--date",
    "session_date",
    default=None,
    help="Session date (YYYY-MM-DD) for normalized files timed from midnight.",
)
@click.option(
    "--instrument",
    default=None,
    help="Replay only this instrument (symbol or venue id) of a file that holds several (a "
    "DBN file); by default each instrument is replayed on its own.",
)
@click.option(
    "--from",
    "case_from",
    default=None,
    help="A case's start (HH:MM, exchange time, or 'YYYY-MM-DD HH:MM' across days; for feeds "
    "timed since the epoch, in the venue's time zone, and the date is a trade date: for CME, "
    "trade date D starts at 17:00 Chicago time on D-1): score only the windows of "
    "--from..--to, with the window grid and each window's context of the full replay.",
)
@click.option(
    "--to", "case_to", default=None, help="A case's end (HH:MM or 'YYYY-MM-DD HH:MM'); with --from."
)
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="scores.jsonl to write."
)
@click.option(
    "--sim-cache",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory of forked rollouts (surveillance.studies.simcache, shared with evaluate "
    "--sim-cache): forks of the same windows are reused, the rest stored.",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the investigator's HTML report here.",
)
def command(
    paths: tuple[Path, ...],
    fmt: str,
    instrument: str | None,
    session_date: str | None,
    case_from: str | None,
    case_to: str | None,
    out: Path,
    report: Path | None,
    sim_cache: Path | None,
    **options: object,
) -> None:
    """Replay historical files through the detection pipeline; one JSON line per window.

    Each window of each file is compared with simulated futures forked at its start; the
    scores, p-values, alerts, per-fact overlaps with their null statistics and the baselines
    go to OUT, and optionally an investigator's report to REPORT.
    """
    window = str(options["window"])
    settings = detection_settings(options)
    from surveillance.cli.wiring import make_scorer
    from surveillance.replay import input_files, instrument_of, read_inputs, replay, write_scores

    date = None
    if session_date is not None:
        try:
            date = dt.date.fromisoformat(session_date)
        except ValueError:
            raise click.BadParameter(f"not a date: {session_date!r}", param_hint="--date") from None
    case = None
    if (case_from is None) != (case_to is None):
        raise click.UsageError("--from and --to go together")
    if case_from is not None and case_to is not None:
        from simulator.units import UnitError, parse_moment
        from surveillance.replay import Case, ReplayError

        try:
            (d0, t0), (d1, t1) = parse_moment(case_from), parse_moment(case_to)
            case = Case(t0, t1, d0, d1)
        except UnitError as exc:
            raise click.BadParameter(str(exc), param_hint="--from/--to") from None
        except ReplayError as exc:
            raise click.BadParameter(str(exc), param_hint="--from/--to") from None
    inputs = [
        item
        for p in input_files(paths, fmt)
        for item in read_inputs(p, fmt, session_date=date, instrument=instrument)
    ]
    venue = instrument_of(inputs)
    scorer, resolved = make_scorer(settings, can_self=True, instrument=venue)
    if sim_cache is not None:
        from surveillance.studies.simcache import WindowForkCache

        scorer.cache = WindowForkCache(sim_cache)
    from surveillance.cli.wiring import SamplerSpec, sampler_for_venue

    # which generator serves this venue (its model, or the empirical one where none exists)
    click.echo(f"sampler: {sampler_for_venue(SamplerSpec.of(settings), venue).note}", err=True)
    if resolved.self_far is not None and settings.calibration == "auto":
        click.echo(
            "no calibration for this model: fitting the threshold on this replay's own "
            "windows (--calibration self)",
            err=True,
        )
    cal, self_far = resolved.calibration, resolved.self_far
    total = sum(len(i.frame) for i in inputs)
    with click.progressbar(length=total, label="replaying", file=sys.stderr, show_pos=True) as bar:
        result = replay(
            inputs,
            scorer,
            progress=lambda n, _: bar.update(n),
            self_calibrate_far=self_far,
            case=case,
        )
    write_scores(out, result.records)
    alerts = sum(bool(r["alert"]) for r in result.records)
    click.echo(
        f"{len(result.records)} windows, {alerts} alerts, {result.events} events"
        f" ({result.malformed_rows} malformed rows skipped) -> {out}"
    )
    off = [r for r in result.records if not _faithful(r)]
    if off:
        click.echo(
            f"{len(off)} windows' simulations are off the real market (orders per rollout or "
            "median spread three or more times off the real window's, either way): their "
            "scores may read the order model rather than the market (detail.simulation)",
            err=True,
        )
    if report is not None:
        from surveillance.report import write_report

        meta = {
            "title": "Replay " + ", ".join(sorted({i.instrument for i in inputs})),
            "files": [str(p) for p in paths],
            "window": window,
            "rollouts": settings.rollouts,
            "seed": settings.seed,
            "model_version": scorer.model_version,
            "calibration": _cal_meta(cal, result.records, self_far),
            "malformed_rows": result.malformed_rows,
            "generated_by": "surveillance replay " + shlex.join(sys.argv[2:]),
        }
        write_report(report, result.records, meta)
        click.echo(f"report -> {report}")


def _faithful(record: dict) -> bool:
    """A replay record's simulation check (``scoring.simulation_check``); a window not scored,
    or replayed before the check, counts as faithful."""
    check = (record.get("detail") or {}).get("simulation")
    return not isinstance(check, dict) or bool(check.get("faithful", True))


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
