"""``surveillance impact``: the market impact of a metaorder on paired forks of a real book."""

from __future__ import annotations

import json
from pathlib import Path

import click

from surveillance.cli.options import rollouts_option


def _data_file(data: str) -> Path:
    """A file, or a dataset of the registry by name (``surveillance data list``)."""
    path = Path(data)
    if path.exists():
        return path
    from surveillance.datasets import DATASETS, DataUnavailable, data_path

    if data not in DATASETS:
        raise click.ClickException(f"no file or dataset named {data!r} (surveillance data list)")
    try:
        return data_path(data)
    except DataUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _pcts(text: str) -> list[float]:
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give percentages like 0.5,1,2,4,8") from None
    if not values or any(not v > 0 for v in values):
        raise click.BadParameter(f"{text!r}: percentages must be positive")
    if len(set(values)) != len(values):
        raise click.BadParameter(f"{text!r}: a percentage is repeated")
    return values


@click.command("impact")
@click.option(
    "--data",
    required=True,
    help="LOBSTER zip (or message CSV with its orderbook beside it), or a dataset name "
    "(lobster-goog-10, lobster-amzn-5).",
)
@click.option("--start", default="14:40", show_default=True, help="Arrival time, HH:MM.")
@click.option("--side", type=click.Choice(["buy", "sell"]), default="buy", show_default=True)
@click.option("--size", type=click.IntRange(1), default=None, help="Metaorder size in shares.")
@click.option(
    "--pct",
    default=None,
    help="Metaorder size in percent of V_T, the instrument's mean visible volume over a span of "
    "--duration in the training hours; several (0.5,1,2,4,8) run a sweep and fit the size law.",
)
@click.option(
    "--strategy", type=click.Choice(["twap", "pov", "market"]), default="twap", show_default=True
)
@click.option("--duration", default="5m", show_default=True, help="Execution time (TWAP, POV).")
@click.option("--after", default="15m", show_default=True, help="Time watched after it.")
@rollouts_option(default=32, minimum=2, help="Rollout pairs (with and without the metaorder).")
@click.option(
    "--passive",
    default=0.8,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="TWAP: share of each 30 s slice resting at the near touch before it takes the rest.",
)
@click.option(
    "--levels",
    default=5,
    show_default=True,
    type=click.IntRange(0),
    help="Price levels of the other side an aggressive order may reach (0: all shown but the "
    "deepest, which no agent order takes).",
)
@click.option(
    "--compare/--no-compare",
    default=False,
    show_default=True,
    help="Also run the aggressiveness ladder at the largest size: TWAP L1-P0.8, L5-P0.8, L5-P0 "
    "(no resting) and one immediate order.",
)
@click.option(
    "--refill/--no-refill",
    default=True,
    show_default=True,
    help="Keep rollout books at the feed's depth from the forked book's own depth, so a large "
    "order meets the liquidity behind the levels the feed shows.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--generator",
    "generator_kind",
    type=click.Choice(["lmm", "empirical"]),
    default="lmm",
    show_default=True,
    help="The order model (the bundled checkpoint unless --model) or the resampling baseline.",
)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="LMM checkpoint.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1))
@click.option(
    "--blind-agents",
    is_flag=True,
    help="The order model reads the metaorder only through the book it leaves, not as orders "
    "of its context (how it was before; to compare).",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each forks whole requests with its own sampler; same figures).",
)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    data: str,
    start: str,
    side: str,
    size: int | None,
    pct: str | None,
    strategy: str,
    duration: str,
    after: str,
    rollouts: int,
    passive: float,
    levels: int,
    compare: bool,
    refill: bool,
    seed: int,
    generator_kind: str,
    model: Path | None,
    threads: int,
    blind_agents: bool,
    jobs: int,
    report_path: Path | None,
    as_json: bool,
) -> None:
    """Market impact of a metaorder: the same rollouts forked with and without it.

    At --start the real book is forked --rollouts times twice with the same seeds, once with
    an agent executing the metaorder inside every rollout (TWAP, POV or one immediate order)
    and once without; each pair's mid difference is the impact. Reported: the impact path
    (mean and 10-90% band, in bps and in units of the rollouts' volatility) up to --after past
    the end, peak and end impact, fill rate, implementation shortfall, a power-law decay fit
    and, over a --pct sweep, the fit of I = Y sigma (Q/V)^delta with bootstrap intervals.
    """
    from simulator.units import UnitError, parse_clock, parse_duration
    from surveillance.impact import ImpactError, Strategy, measure_impact

    try:
        start_ns = parse_clock(start)
        duration_ns = parse_duration(duration)
        after_ns = parse_duration(after)
    except UnitError as exc:
        raise click.BadParameter(str(exc)) from None
    if (size is None) == (pct is None):
        raise click.UsageError("give the metaorder's size: --size SHARES or --pct P[,P...]")
    pcts = _pcts(pct) if pct is not None else []
    if strategy == "market" and compare:
        raise click.UsageError("--compare runs its own ladder: use it with --strategy twap|pov")
    try:
        plan = Strategy(strategy, passive=passive, levels=levels or None)
    except ImpactError as exc:
        raise click.BadParameter(str(exc)) from None
    path = _data_file(data)
    from simulator.lobster import load_lobster
    from surveillance.cli.wiring import SamplerSpec, ScorerSetupError, SettingsError

    day = load_lobster(path)
    spec = SamplerSpec(
        generator_kind,
        (str(model),) if model else (),
        threads=threads,
        tick_size=day.instrument.tick_size,
        see_agents=not blind_agents,
    )
    try:
        spec.checked()
        name = spec.model_version
    except (ScorerSetupError, SettingsError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None
    # progress goes to stderr even with --json: a sweep runs for minutes
    progress = lambda line: click.echo(line, err=True)  # noqa: E731
    try:
        report = measure_impact(
            day,
            spec,
            start_ns=start_ns,
            side=1 if side == "buy" else -1,
            strategy=plan,
            sizes=[size] if size is not None else [],
            pcts=pcts,
            duration_ns=duration_ns,
            after_ns=after_ns,
            rollouts=rollouts,
            seed=seed,
            jobs=jobs,
            compare=compare,
            refill=refill,
            generator_name=name,
            progress=progress,
        )
    except ImpactError as exc:
        raise click.ClickException(str(exc)) from None
    out = report.as_dict()
    if report_path is not None:
        from surveillance.impact.report import write_report

        write_report(report_path, out)
    if as_json:
        click.echo(json.dumps(out))
        return
    _print(out)


def _print(out: dict) -> None:
    vol, v = out["volatility"], out["volume"]
    click.echo(
        f"{out['instrument']} {out['side']} at {out['start']}  generator={out['generator']}  "
        f"rollout pairs={out['rollouts']}  held_out={out['held_out']}"
    )
    click.echo(
        f"V_T={v['per_duration']:.0f} shares per {v['duration_s']:.0f} s (training hours), "
        f"day {v['day']:.0f}; sigma_T={vol['sigma_T_bps']:.2f} bps, daily {vol['daily_bps']:.1f}"
    )
    click.echo(
        f"{'strategy':<16}{'qty':>7}{'pct':>7}{'peak':>8}{'end':>8}{'final':>8}{'end/sig':>9}"
        f"{'fill':>7}{'IS bps':>8}{'decay b':>9}"
    )
    runs = list(out["runs"])
    if out["aggressiveness"]:
        runs += out["aggressiveness"]["runs"]
    for r in runs:
        d = r["decay"] or {}
        expo = d.get("exponent")
        click.echo(
            f"{r['strategy']:<16}{r['qty']:>7}{r['pct'] or 0:>7.2f}{r['peak_bps']:>8.2f}"
            f"{r['end_bps']:>8.2f}{r['final_bps']:>8.2f}{r['end_sigma'] or 0:>9.3f}"
            f"{r['fill_rate']:>7.3f}{r['shortfall_bps'] or 0:>8.2f}"
            f"{'-' if expo is None else f'{expo:.2f}':>9}"
        )
    law = out["size_law"]
    if law:
        click.echo(
            f"size law: delta={law['delta']:.3f} {law['delta_ci95']}  Y={law['Y']:.3f} "
            f"{law['Y_ci95']}  Y_daily={law['Y_daily']:.3f} (literature: order one, "
            f"{law['Y_literature'][0]}-{law['Y_literature'][1]})  goals={law['goals']}"
        )
    if out["aggressiveness"]:
        click.echo(f"peak impact rises with aggressiveness: {out['aggressiveness']['peak_rises']}")
    click.echo(f"{out['seconds']:.0f} s")
    for note in out["notes"]:
        click.echo(f"note: {note}")
