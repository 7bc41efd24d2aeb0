"""``surveillance evaluate``: the manipulation benchmark on clean and manipulated real days."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
import numpy as np

from surveillance.cli.options import detection_options, detection_settings

DEFAULT_DAYS = ("lobster-goog-10", "lobster-amzn-5")  # data registry names


@click.command("evaluate")
@click.option(
    "--data",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A day (repeatable; default: the shared GOOG level-10 and AMZN level-5 LOBSTER days); "
    "another venue's file with --format.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lobster", "databento", "bitstamp", "normalized"]),
    default="lobster",
    show_default=True,
    help="Format of the --data files; a venue's times are read as times of day in its time zone "
    "(UTC for Bitstamp), and its tick, lot and session come from its instrument metadata.",
)
@click.option(
    "--start",
    default="14:30",
    show_default=True,
    help="First window start (exchange time); default: the held-out 90 minutes.",
)
@click.option("--end", default="16:00", show_default=True, help="Evaluation span end.")
@click.option(
    "--also",
    "also_spans",
    multiple=True,
    help="More evaluation windows, starting in HH:MM-HH:MM at --stride (repeatable; e.g. the "
    "open, 09:35-10:00): scored like the span's, and with --time-of-day their clean windows "
    "are time-of-day material for their bucket, as the close's are.",
)
@click.option(
    "--calibration-span",
    default="10:00-14:30",
    show_default=True,
    help="Normal windows (one per --calibration-stride) the simulation detector's fact norms "
    "and threshold are fitted on, before the evaluation span.",
)
@click.option(
    "--calibration-stride",
    default="5m",
    show_default=True,
    help="Between calibration window starts. Shorter than the window, the windows overlap: "
    "more of them for the fact norms, and each is scored for the threshold with norms fitted "
    "without the windows it overlaps.",
)
@click.option("--stride", default="5m", show_default=True, help="Between window starts.")
@detection_options(calibration=False)
@click.option(
    "--typologies", default="all", show_default=True, help="Comma-separated typologies, or all."
)
@click.option(
    "--intensities",
    default="low,moderate,high",
    show_default=True,
    help="Comma-separated intensities: named levels (low 0.5, moderate 1, high 2) or numeric "
    "scales of the moderate campaign (0.25,0.5,1,2).",
)
@click.option(
    "--campaign-seed",
    default=0,
    show_default=True,
    type=int,
    help="Salts the injected campaigns' seeds (0: the benchmark's own campaigns); a tuning run "
    "on the calibration hours uses its own.",
)
@click.option(
    "--cached-only",
    is_flag=True,
    help="Score only the windows whose forks --sim-cache already holds (never fork); the "
    "windows left out are named on stderr.",
)
@click.option(
    "--without",
    "without_facts",
    default="",
    help="Comma-separated facts to leave out of the detector's score (an ablation: "
    "--without sweep_bursts,sweep_pressure scores the facts of the detector before them).",
)
@click.option(
    "--curves",
    is_flag=True,
    help="Detection-limit curves: per instrument and typology, calibrated AUC and TPR at the "
    "calibrated threshold against intensity, and the smallest detectable intensity.",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each day's calibration and evaluation phases run in parallel).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write every window's scores and the summary here (JSON).",
)
@click.option(
    "--calibration-out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the calibration (fact norms and alert threshold) fitted on the calibration "
    "windows here: what `replay` and the worker load.",
)
@click.option(
    "--calibration",
    "calibration_in",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Score the windows with this calibration file instead of fitting one (the "
    "calibration windows are still forked and reported).",
)
@click.option(
    "--time-of-day/--no-time-of-day",
    "time_of_day",
    default=False,
    show_default=True,
    help="Fit time-of-day norms as well: the calibration windows at the open and the clean "
    "evaluation windows at the close, leave one instrument out (off by default: "
    "docs/decisions/time-of-day-calibration.md).",
)
@click.option(
    "--time-of-day-onto",
    "tod_onto",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Keep this calibration's instrument norms and threshold and fit only its time-of-day "
    "norms: on the calibration windows at the open and the clean evaluation windows at the "
    "close, leave one instrument out.",
)
@click.option(
    "--scenarios/--no-scenarios",
    "scenarios",
    default=False,
    show_default=True,
    help="Fit scenarios as well (surveillance.detection.detector.SCENARIOS: the sweep facts "
    "scored apart against a threshold of their own, each score at an equal share of --far); "
    "off by default (why: docs/studies/aggressive-manipulation.md, Scenarios).",
)
@click.option(
    "--cold-own-windows",
    "cold_own",
    type=click.IntRange(0, None),
    default=None,
    help="For an instrument (or feed depth) the calibration has no norms for: read its "
    "held-out windows with at most this many of its own calibration-span windows (0: as on "
    "its first window, norms pooled by likeness alone; default: all of them).",
)
@click.option(
    "--far",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Target false-alarm rate.",
)
@click.option(
    "--sim-cache",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory of forked rollouts (surveillance.studies.simcache): forks found there are reused, "
    "the rest are stored, so a rerun with other facts or intensities skips the model.",
)
@click.option(
    "--refill/--no-refill",
    default=False,
    show_default=True,
    help="Keep rollout books at the feed's depth (simulator.rollout, refill).",
)
def command(  # type: ignore[no-untyped-def]
    paths,
    fmt,
    start,
    end,
    also_spans,
    calibration_span,
    calibration_stride,
    stride,
    typologies,
    intensities,
    campaign_seed,
    cached_only,
    without_facts,
    curves,
    jobs,
    as_json,
    out,
    calibration_out,
    calibration_in,
    time_of_day,
    tod_onto,
    cold_own,
    scenarios,
    far,
    sim_cache,
    refill,
    **options,
) -> None:
    """Score clean and manipulated variants of real days with the simulation detector and two
    baselines; print ROC AUC and the true-positive rate at 5% false positives per typology and
    intensity."""
    settings = dataclasses.replace(detection_settings(options), far=far, refill=refill)
    from simulator.manipulation import Typology
    from simulator.units import parse_clock, parse_duration
    from surveillance.cli.wiring import SamplerSpec
    from surveillance.detection.detector import SCENARIOS, Calibration
    from surveillance.studies.evaluate import (
        EvaluationConfig,
        IntensityError,
        alert_rates,
        calibrate,
        calibrated_rates,
        cold_summary,
        detection_curves,
        evaluate_day,
        evaluate_task,
        intensity_scale,
        rescore,
        summarize,
    )

    if calibration_in is not None and tod_onto is not None:
        raise click.UsageError(
            "--calibration scores with a calibration, --time-of-day-onto fits one"
        )
    if scenarios and (calibration_in is not None or tod_onto is not None):
        raise click.UsageError(
            "--scenarios fits a calibration with them; --calibration and "
            "--time-of-day-onto keep the file's own"
        )

    days = list(paths) or [_registry_path(name) for name in DEFAULT_DAYS]
    for p in days:
        if not p.exists():
            raise click.ClickException(f"no such file: {p}")
    try:
        kinds = (
            tuple(Typology)
            if typologies == "all"
            else tuple(Typology(t.strip()) for t in typologies.split(","))
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--typologies") from None
    levels = tuple(x.strip() for x in intensities.split(","))
    try:
        for level in levels:
            intensity_scale(level)
    except IntensityError as exc:
        raise click.BadParameter(str(exc), param_hint="--intensities") from None
    span = calibration_span.split("-")
    if len(span) != 2:
        raise click.BadParameter("use HH:MM-HH:MM", param_hint="--calibration-span")
    detection = settings.config()
    if without_facts:
        dropped = {f.strip() for f in without_facts.split(",") if f.strip()}
        unknown = sorted(dropped - set(detection.facts))
        if unknown:
            raise click.BadParameter(
                f"{unknown[0]!r} is not a scored fact; scored: {', '.join(detection.facts)}",
                param_hint="--without",
            )
        detection = dataclasses.replace(
            detection, facts=tuple(f for f in detection.facts if f not in dropped)
        )
    if cached_only and sim_cache is None:
        raise click.UsageError("--cached-only reads the forks of --sim-cache: name one")
    cal_lo, cal_hi = parse_clock(span[0]), parse_clock(span[1])
    extra = []
    for text in also_spans:
        bounds = text.split("-")
        if len(bounds) != 2:
            raise click.BadParameter("use HH:MM-HH:MM", param_hint="--also")
        try:
            lo, hi = parse_clock(bounds[0]), parse_clock(bounds[1])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--also") from None
        if hi <= lo:
            raise click.BadParameter(f"{text}: the span ends before it starts", param_hint="--also")
        if lo < cal_hi and hi > cal_lo:
            raise click.BadParameter(
                f"{text} starts windows inside the calibration span {calibration_span}: they "
                "would be fitted on and evaluated",
                param_hint="--also",
            )
        extra.append((lo, hi))
    config = EvaluationConfig(
        detection=detection,
        start_ns=parse_clock(start),
        end_ns=parse_clock(end),
        stride_ns=parse_duration(stride),
        extra_spans=tuple(extra),
        typologies=kinds,
        intensities=levels,
        campaign_seed=campaign_seed,
        cached_only=cached_only,
        target_fpr=far,
        calibration_start_ns=cal_lo,
        calibration_end_ns=cal_hi,
        calibration_stride_ns=parse_duration(calibration_stride),
    )
    if not config.window_starts():
        raise click.ClickException("no window fits between --start and --end")
    if not config.calibration_starts():
        raise click.ClickException("no calibration window fits before the evaluation span")
    spec, note = _venue_sampler(SamplerSpec.of(settings), days[0], fmt)
    # which generator serves (the venue's model, or the empirical one where none exists)
    click.echo(f"sampler: {note}", err=True)
    model_version, config_version = spec.model_version, detection.version()
    tasks = [(p, phase) for p in days for phase in (True, False)]
    cache_dir = str(sim_cache) if sim_cache is not None else None
    if jobs == 1:
        from surveillance.studies.simcache import SimCache

        gen = spec()
        say = lambda m: click.echo(f"  {m}", err=True)  # noqa: E731
        cache = SimCache(cache_dir) if cache_dir else None
        done = [
            evaluate_day(
                p,
                gen,
                config,
                progress=say,
                calibration=c,
                cache=cache,
                generator_version=model_version,
                fmt=fmt,
            )
            for p, c in tasks
        ]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(evaluate_task, p, spec, config, c, cache_dir, model_version, fmt)
                for p, c in tasks
            ]
            done = [f.result() for f in futures]
    normal = [r for (_, c), part in zip(tasks, done, strict=True) if c for r in part]
    results = [r for (_, c), part in zip(tasks, done, strict=True) if not c for r in part]
    names = ", ".join(p.name for p in days)
    if calibration_in is not None:
        cal = Calibration.load(calibration_in)
        rescore(results, cal, normal, cold_own)
    else:
        cal = calibrate(
            normal,
            results,
            far=far,
            method=f"clean windows {calibration_span} every {calibration_stride} of {names}"
            if tod_onto is None
            else f"the open of {calibration_span} and the clean close of {start}-{end} of {names}",
            model_version=model_version,
            config_version=config_version,
            window_ns=config.detection.window_ns,
            onto=None if tod_onto is None else Calibration.load(tod_onto),
            time_of_day=config.time_of_day if time_of_day or tod_onto else None,
            own_windows=cold_own,
            scenarios=SCENARIOS if scenarios else None,
        )
    summary = summarize(results, config.target_fpr)
    clean_cal = [r.scores["simulation"] for r in results if r.variant == "clean"]
    summary["calibration"] = {
        "normal_windows": cal.n_normal,
        "threshold": cal.threshold,
        "far": far,
        "note": cal.note,
        # each scenario's own threshold (the calibrated score clears ``threshold`` when the
        # omnibus score or a scenario's clears its own)
        "scenarios": {name: sc.threshold for name, sc in cal.scenarios.items()},
        # the threshold fitted on the calibration windows, applied to the evaluation's clean
        # windows: the false-alarm rate a deployment of this calibration would have had
        "false_alarm_rate": float(np.mean([cal.is_alert(x) for x in clean_cal]))
        if clean_cal
        else None,
        # and the share of manipulated windows it flags, per typology and intensity
        "alert_rate": {
            f"{v}/{i}": float(
                np.mean(
                    [
                        cal.is_alert(r.scores["simulation"])
                        for r in results
                        if r.variant == v and r.intensity == i
                    ]
                )
            )
            for v, i in sorted({(r.variant, r.intensity) for r in results if r.variant != "clean"})
        },
        # the same per instrument and time-of-day bucket, with what stands behind the norms
        "by_bucket": alert_rates(results, cal),
        "time_of_day": cal.time_of_day,
        "source": str(calibration_in or tod_onto or "fitted"),
        # instruments (or feed depths) read cold: how, and what it gave
        "cold_start": cold_summary(results, cal),
    }
    # every detector at a threshold fitted on the calibration windows (the simulation
    # detector's: its calibration above)
    summary["calibrated"] = {
        "simulation": {
            "threshold": cal.threshold,
            "false_alarm_rate": summary["calibration"]["false_alarm_rate"],
            "tpr": summary["calibration"]["alert_rate"],
        },
        **calibrated_rates(normal, results, far),
    }
    if curves:
        summary["curves"] = detection_curves(results, cal)
    summary["model_version"] = model_version
    summary["sampler"] = note
    if settings.sampling:  # set for this run (the model version says so too)
        summary["sampling"] = settings.sampling
    summary["config_version"] = config_version
    summary["rollouts"] = settings.rollouts
    summary["days"] = [str(p) for p in days]
    if out is not None:
        out.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "windows": [r.as_dict() for r in results],
                    "calibration_windows": [r.as_dict() for r in normal],
                },
                indent=1,
            )
            + "\n"
        )
    if calibration_out is not None:
        cal.save(calibration_out)
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_table(summary)


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.0%}"


def _venue_sampler(spec, path: Path, fmt: str):  # type: ignore[no-untyped-def]
    """The sampler for the days' venue (``sampler_for_venue``) and the line saying which."""
    from simulator.feeds import feed_instrument
    from surveillance.cli.wiring import sampler_for_venue

    instrument = feed_instrument(path, fmt)
    chosen = sampler_for_venue(spec, instrument)
    return chosen.spec, chosen.note


def _print_table(summary: dict) -> None:
    from surveillance.studies.evaluate import DETECTORS

    out = sys.stdout
    if summary.get("sampler"):
        out.write(f"sampler: {summary['sampler']}\n")
    out.write(f"{summary['windows']} clean windows; AUC / TPR at {summary['fpr']:.0%} FPR\n")
    out.write(f"{'typology':<20}{'intensity':<10}" + "".join(f"{d:>26}" for d in DETECTORS) + "\n")
    for typology, by in summary["by_typology"].items():
        for intensity, cell in by.items():
            row = f"{typology:<20}{intensity:<10}"
            for d in DETECTORS:
                c = cell[d]
                auc = "-" if c["auc"] is None else f"{c['auc']:.3f}"
                tpr = "-" if c["tpr_at_fpr"] is None else f"{c['tpr_at_fpr']:.2f}"
                row += f"{auc + ' / ' + tpr:>26}"
            out.write(row + "\n")
    instruments = summary.get("by_instrument", {})
    if len(instruments) > 1:  # with one instrument this is the table above
        out.write("simulation AUC within each instrument\n")
        out.write(f"{'typology':<20}{'intensity':<10}" + "".join(f"{i:>10}" for i in instruments))
        out.write("\n")
        for typology, by in summary["by_typology"].items():
            row = f"{typology:<20}"
            for intensity in by:
                cells = [
                    instruments[i].get(typology, {}).get(intensity, {}).get("simulation")
                    for i in instruments
                ]
                out.write(
                    f"{row}{intensity:<10}"
                    + "".join(f"{'-' if a is None else f'{a:.3f}':>10}" for a in cells)
                    + "\n"
                )
    means = summary["mean_auc"]
    out.write(
        "mean AUC: "
        + ", ".join(f"{d} {'-' if v is None else f'{v:.3f}'}" for d, v in means.items())
        + "\n"
    )
    rates = summary.get("calibrated")
    if rates:
        out.write(f"at thresholds fitted on the calibration windows ({summary['fpr']:.0%} FAR): ")
        out.write("TPR per typology, false-alarm rate on the clean windows\n")
        out.write(f"{'':<30}" + "".join(f"{d:>26}" for d in rates) + "\n")
        keys = next(iter(rates.values()))["tpr"]
        for key in keys:
            typology, intensity = key.split("/")
            out.write(f"{typology:<20}{intensity:<10}")
            out.write("".join(f"{rates[d]['tpr'].get(key, float('nan')):>26.2f}" for d in rates))
            out.write("\n")
        out.write(f"{'false alarms (clean)':<30}")
        out.write("".join(f"{_pct(rates[d]['false_alarm_rate']):>26}" for d in rates) + "\n")
    if summary.get("curves"):
        _print_curves(summary["curves"])
    cal = summary.get("calibration")
    if cal:
        far = cal["false_alarm_rate"]
        out.write(
            f"calibration: {cal['normal_windows']} normal windows, threshold "
            f"{cal['threshold']:.3f}; on the evaluation's clean windows it alerts on "
            f"{'-' if far is None else f'{far:.0%}'} (target {cal['far']:.0%})\n"
        )


def _print_curves(curves: dict) -> None:
    from surveillance.studies.evaluate import DETECTABLE_AUC, DETECTABLE_TPR

    out = sys.stdout
    out.write(
        "detection-limit curves (calibrated): AUC / TPR at the calibrated threshold per "
        f"intensity scale; detectable from: AUC >= {DETECTABLE_AUC}, TPR >= {DETECTABLE_TPR}\n"
    )
    for instrument, inst in curves.items():
        out.write(
            f"{instrument}: {inst['clean_windows']} clean windows, false alarms "
            f"{_pct(inst['false_alarm_rate'])}\n"
        )
        for typology, curve in inst["typologies"].items():
            cells = "".join(
                f"  {p['scale']:g}: "
                + ("-" if p["auc"] is None else f"{p['auc']:.2f}")
                + " / "
                + ("-" if p["tpr"] is None else f"{p['tpr']:.2f}")
                for p in curve["points"]
            )

            def first(x: float | None) -> str:
                return "never" if x is None else f"{x:g}"

            out.write(
                f"  {typology:<20}{cells}   from {first(curve['min_scale_auc'])} (AUC), "
                f"{first(curve['min_scale_tpr'])} (TPR)\n"
            )


def _registry_path(name: str) -> Path:
    from surveillance.datasets import DataUnavailable, data_path

    try:
        return data_path(name)
    except DataUnavailable as exc:
        raise click.ClickException(str(exc)) from None
