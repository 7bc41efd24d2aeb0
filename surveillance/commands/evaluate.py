"""``surveillance evaluate``: the manipulation benchmark on clean and manipulated real days."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "lobster"
DEFAULT_DAYS = (
    SHARED / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip",
    SHARED / "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip",
)


@click.command("evaluate")
@click.option(
    "--data",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="LOBSTER day (repeatable; default: the shared GOOG level-10 and AMZN level-5 days).",
)
@click.option(
    "--start",
    default="14:30",
    show_default=True,
    help="First window start (exchange time); default: the held-out 90 minutes.",
)
@click.option("--end", default="16:00", show_default=True, help="Evaluation span end.")
@click.option("--window", default="25m", show_default=True, help="Window length.")
@click.option("--stride", default="5m", show_default=True, help="Between window starts.")
@click.option("--rollouts", default=32, show_default=True, type=click.IntRange(3, 4096))
@click.option(
    "--typologies", default="all", show_default=True, help="Comma-separated typologies, or all."
)
@click.option("--intensities", default="low,moderate,high", show_default=True)
@click.option(
    "--generator", type=click.Choice(["lmm", "empirical"]), default="lmm", show_default=True
)
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None)
@click.option("--seed", default=0, show_default=True)
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
    help="Fit the alert threshold on the clean windows' scores and write it here.",
)
@click.option(
    "--far", default=0.05, show_default=True, help="False-alarm rate for --calibration-out."
)
def command(
    paths,
    start,
    end,
    window,
    stride,
    rollouts,
    typologies,
    intensities,
    generator,  # type: ignore[no-untyped-def]
    model_path,
    seed,
    as_json,
    out,
    calibration_out,
    far,
) -> None:
    """Score clean and manipulated variants of real days with the simulation detector and two
    baselines; print ROC AUC and the true-positive rate at 5% false positives per typology and
    intensity."""
    from simulator.manipulation import INTENSITIES, Typology
    from surveillance.detector import Calibration
    from surveillance.evaluate import EvaluationConfig, evaluate_day, summarize
    from surveillance.realism import parse_clock, parse_duration
    from surveillance.scorer import SimulationScorer, make_generator
    from surveillance.scoring import DetectionConfig

    days = list(paths) or list(DEFAULT_DAYS)
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
    unknown = [x for x in levels if x not in INTENSITIES]
    if unknown:
        raise click.BadParameter(
            f"unknown intensity {unknown[0]!r}; choose from {', '.join(INTENSITIES)}",
            param_hint="--intensities",
        )
    detection = DetectionConfig(window_ns=parse_duration(window), rollouts=rollouts, seed=seed)
    config = EvaluationConfig(
        detection=detection,
        start_ns=parse_clock(start),
        end_ns=parse_clock(end),
        stride_ns=parse_duration(stride),
        typologies=kinds,
        intensities=levels,
    )
    if not config.window_starts():
        raise click.ClickException("no window fits between --start and --end")
    scorer = SimulationScorer(
        detection, generator=generator, model_path=str(model_path) if model_path else None
    )
    gen = make_generator(generator, scorer.model_path)
    results = []
    for p in days:
        results.extend(
            evaluate_day(p, gen, config, progress=lambda m: click.echo(f"  {m}", err=True))
        )
    summary = summarize(results, config.target_fpr)
    summary["model_version"] = scorer.model_version
    summary["config_version"] = scorer.config_version
    summary["rollouts"] = rollouts
    summary["days"] = [str(p) for p in days]
    if out is not None:
        out.write_text(
            json.dumps({"summary": summary, "windows": [r.as_dict() for r in results]}, indent=1)
            + "\n"
        )
    if calibration_out is not None:
        clean = [r.scores["simulation"] for r in results if r.variant == "clean"]
        Calibration.fit(
            clean,
            far=far,
            method=f"clean windows {start}-{end} of " + ", ".join(p.name for p in days),
            model_version=scorer.model_version,
            config_version=scorer.config_version,
        ).save(calibration_out)
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_table(summary)


def _print_table(summary: dict) -> None:
    out = sys.stdout
    out.write(f"{summary['windows']} clean windows; AUC / TPR at {summary['fpr']:.0%} FPR\n")
    out.write(
        f"{'typology':<20}{'intensity':<10}{'simulation':>16}{'historical_diff':>18}"
        f"{'spread_zscore':>16}\n"
    )
    for typology, by in summary["by_typology"].items():
        for intensity, cell in by.items():
            row = f"{typology:<20}{intensity:<10}"
            for d, width in (("simulation", 16), ("historical_diff", 18), ("spread_zscore", 16)):
                c = cell[d]
                auc = "-" if c["auc"] is None else f"{c['auc']:.3f}"
                tpr = "-" if c["tpr_at_fpr"] is None else f"{c['tpr_at_fpr']:.2f}"
                row += f"{auc + ' / ' + tpr:>{width}}"
            out.write(row + "\n")
    means = summary["mean_auc"]
    out.write(
        "mean AUC: "
        + ", ".join(f"{d} {'-' if v is None else f'{v:.3f}'}" for d, v in means.items())
        + "\n"
    )
