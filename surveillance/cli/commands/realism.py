"""``surveillance realism``: stylized-fact overlap of rollouts vs the real windows they forecast."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from surveillance.cli.options import rollouts_option, sampling_options, sampling_settings


def build_generator(
    kind: str,
    models: tuple[Path, ...],
    tick_size: int,
    stream: object = None,
    threads: int = 1,
    sampling: dict[str, object] | None = None,
) -> tuple[object, str]:
    """The order generator a run uses and its model version (the report's name for it): the
    product's sampler (``surveillance.cli.wiring.SamplerSpec``: no checkpoint means the
    bundled one, several make a mixture), or the study's own ``replay`` reference (the real
    orders themselves)."""
    sampling = sampling_settings(kind, **(sampling or {}))
    if kind == "replay":
        from simulator.generators import ReplayGenerator

        return ReplayGenerator(stream), "replay"  # type: ignore[arg-type]
    from surveillance.cli.wiring import SamplerSpec, ScorerSetupError

    spec = SamplerSpec(
        kind,
        tuple(str(p) for p in models),
        sampling=tuple(sorted(sampling.items())),
        threads=threads,
        tick_size=tick_size,
    )
    try:
        spec.checked()
        return spec(), spec.model_version
    except (ScorerSetupError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc


def generator_of(*args: object) -> object:
    """``build_generator(*args)``'s generator alone: what a ``--jobs`` worker process builds
    (a module-level function, so a process pool can pickle it inside a ``partial``)."""
    return build_generator(*args)[0]  # type: ignore[arg-type]


@click.command("realism")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="LOBSTER zip (or message CSV with its orderbook file beside it).",
)
@click.option("--start", default="14:30", show_default=True, help="First window start, HH:MM.")
@click.option("--windows", default=3, show_default=True, type=int, help="Consecutive windows.")
@rollouts_option(default=32, minimum=1, help="Rollouts per window.")
@click.option("--window", "window", default="25m", show_default=True, help="Window length.")
@click.option(
    "--context", default="30m", show_default=True, help="Real order history given as context."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--generator",
    "generator_kind",
    type=click.Choice(["lmm", "empirical", "replay"]),
    default="lmm",
    show_default=True,
    help="The trained order model; the empirical (resampling) baseline; or replay: the real "
    "orders of each window replayed into its fork (a ceiling for the engine and the data, "
    "not a forecast).",
)
@click.option(
    "--model",
    "models",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Order-model checkpoint (default: the bundled one). Repeat it to roll out a "
    "mixture: rollout i is driven by model i mod M (e.g. models trained with other seeds).",
)
@click.option("--max-orders", type=int, default=None, help="Cap on orders per rollout.")
@click.option(
    "--refill/--no-refill",
    default=False,
    show_default=True,
    help="Keep every rollout book at the feed's depth: levels that a level-N feed would bring "
    "into view behind a taken or cancelled one are drawn from the forked book's own depth.",
)
@sampling_options()
@click.option("--threads", default=1, show_default=True, help="torch threads for the model.")
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes: windows are forked in parallel, each process with its own "
    "generator (the figures are the same as with one).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(
    data: Path,
    start: str,
    windows: int,
    rollouts: int,
    window: str,
    context: str,
    seed: int,
    generator_kind: str,
    models: tuple[Path, ...],
    max_orders: int | None,
    refill: bool,
    temperature: float | tuple[float, ...] | None,
    top_p: float | tuple[float, ...] | None,
    threads: int,
    jobs: int,
    as_json: bool,
) -> None:
    """Fork rollouts at the start of K consecutive windows and score their realism.

    The real book at each window start is rebuilt from the feed; the rollouts continue it with
    the order generator; the stylized facts of the real windows and of the rollouts are
    compared with the overlap coefficient (1 = same distribution), next to the MarS paper's
    Table 7. The last 90 minutes (from 14:30) are held out from training.
    """
    from simulator.lobster import load_lobster
    from simulator.orderstream import from_lobster
    from simulator.units import UnitError, parse_clock, parse_duration
    from surveillance.detection.metrics import FACTS
    from surveillance.studies.realism import (
        BUDGET_CLASSES,
        RealismError,
        bar_of,
        evaluate_realism,
    )

    try:
        start_ns = parse_clock(start)
        window_ns = parse_duration(window)
        context_ns = parse_duration(context)
    except UnitError as exc:
        raise click.BadParameter(str(exc)) from None
    if windows <= 0:
        raise click.BadParameter("--windows must be positive")
    if max_orders is not None and max_orders <= 0:
        raise click.BadParameter("--max-orders must be positive")
    day = load_lobster(data)
    stream = from_lobster(day)
    if threads <= 0:
        raise click.BadParameter("--threads must be positive")
    build_args = (
        generator_kind,
        models,
        day.instrument.tick_size,
        stream if generator_kind == "replay" else None,  # only the replay reads the stream
        threads,
        {"temperature": temperature, "top_p": top_p},
    )
    generator, name = build_generator(*build_args)
    progress = None if as_json else (lambda line: click.echo(line, err=True))
    try:
        report = evaluate_realism(
            day,
            generator,  # type: ignore[arg-type]
            generator_name=name,
            start_ns=start_ns,
            windows=windows,
            window_ns=window_ns,
            rollouts=rollouts,
            seed=seed,
            context_ns=context_ns,
            max_orders=max_orders,
            stream=stream,
            progress=progress,
            refill=refill,
            jobs=jobs,
            generator_factory=functools.partial(generator_of, *build_args),
        )
    except RealismError as exc:
        raise click.ClickException(str(exc)) from None
    out = report.as_dict()
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(
        f"{report.instrument}  generator={report.generator}  rollouts={report.rollouts}  "
        f"windows={len(report.windows)}  held_out={report.held_out}"
    )
    # prev: the real span just before the windows against them (the persistence forecast);
    # best: the best-matching real span of the training hours, chosen in hindsight;
    # ceil: the median overlap of a left-out rollout with the others, and how often it is at
    # the bar (what a generator exchangeable with the market would score); rank: the share of
    # left-out rollouts that scored no better than the generator did
    click.echo(
        f"{'fact':<24}{'overlap':>9}{'prev':>7}{'best':>7}{'ceil':>7}{'at bar':>8}{'rank':>6}"
        f"{'paper':>8}{'bar':>6}  pass"
    )
    facts = out["facts"]
    for fact in FACTS:
        row = facts[fact]  # type: ignore[index]
        ovl = "-" if row["overlap"] is None else f"{row['overlap']:.3f}"
        paper = "-" if row["paper"] is None else f"{row['paper']:.3f}"
        prev = "-" if row["reference"] is None else f"{row['reference']:.3f}"
        best = "-" if row["analog"] is None else f"{row['analog']:.3f}"
        ceil = row["ceiling"]
        med = "-" if ceil is None else f"{ceil['median']:.3f}"
        share = "-" if ceil is None or ceil["at_bar"] is None else f"{ceil['at_bar']:.0%}"
        rank = "-" if ceil is None or ceil["rank"] is None else f"{ceil['rank']:.2f}"
        bar = "-" if row["bar"] is None else f"{row['bar']:.2f}"
        held = "-" if row["passed"] is None else row["passed"]
        click.echo(
            f"{fact:<24}{ovl:>9}{prev:>7}{best:>7}{med:>7}{share:>8}{rank:>6}{paper:>8}{bar:>6}"
            f"  {held}"
        )
    if len(report.windows) > 1:  # which window a shortfall comes from
        click.echo(
            f"{'per window, overlap':<24}" + "".join(f"{w.start[:5]:>7}" for w in report.windows)
        )
        for fact in FACTS:
            if bar_of(fact) is None:
                continue
            values = [w.overlaps.get(fact) for w in report.windows]
            click.echo(
                f"  {fact:<22}" + "".join("    -  " if v is None else f"{v:>7.3f}" for v in values)
            )
    if report.analog is not None:
        a = report.analog
        click.echo(
            f"best real span of the training hours: {a.start[:5]}-{a.end[:5]}, {a.at_bar} held "
            f"facts at the bar; {a.spans_at_bar} of {a.spans} spans at the bar on every fact"
        )
    if report.ceiling is not None:
        click.echo(
            f"left-out rollouts at the bar on every fact: "
            f"{report.ceiling.all_passed_share:.0%} of {len(report.ceiling.draws)}"
        )
    click.echo(
        "spread budget, per window: events, ticks narrowed, ticks widened, ticks per widening"
    )
    budget = out["spread_budget"]
    for cls in BUDGET_CLASSES:
        cells = []
        for who in ("real", "sim"):
            b = budget[who][cls]  # type: ignore[index]
            per = b["widened_ticks"] / b["widening_events"] if b["widening_events"] else 0.0
            cells.append(
                f"{who} {b['events']:>7.0f} {b['narrowed_ticks']:>6.0f} "
                f"{b['widened_ticks']:>6.0f} {per:>5.1f}"
            )
        click.echo(f"  {cls:<11}" + "   ".join(cells))
    levels = [w.summary["levels_per_side"] for w in report.windows]  # type: ignore[index]
    click.echo(
        "book levels per side, mean per window: "
        + ", ".join(f"real {lv['real']:.1f} sim {lv['sim']:.1f}" for lv in levels)
    )
    for note in report.notes:
        click.echo(f"note: {note}")
