"""``surveillance forecast``: the engine as a forecaster of the mid-price trend (MarS Sec. 4.1)
against the most frequent class, no change, a logistic regression and DeepLOB.

The core (targets, thresholds, the engine forecast, baselines, scores) is
``surveillance.forecast``; this file wires the sampler and DeepLOB (``models.deeplob``, the only
torch part) into it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import click

DEFAULT_DATA = ("lobster-goog-10", "lobster-amzn-5")
# The grid is 60 s; with the bundled model on this 2-core machine that takes about 20
# minutes for both instruments, so the default run takes every other start (the figures at 60 s
# come from two interleaved runs combined: ``forecast score``; docs/studies/forecasting.md).
DEFAULT_EVERY = "120s"
DEFAULT_JOBS = 2
# DeepLOB's training grid (inside the training hours): every 4 s up to the validation slice,
# then every 5 s over the slice before the held-out hours that early stopping watches.
DEEPLOB_TRAIN_EVERY_S = 4
DEEPLOB_VAL_EVERY_S = 5
DEEPLOB_VAL_START = "13:30"


def _cache_dir(path: Path | None) -> Path:
    if path is not None:
        return path
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mars-surveillance" / "forecast"


def _data_paths(data: tuple[str, ...]) -> list[Path]:
    """Each ``--data``: a file, else a dataset of the registry (``surveillance data list``)."""
    from surveillance.datasets import DATASETS, DataUnavailable, data_path

    out = []
    for item in data:
        p = Path(item)
        if p.exists():
            out.append(p)
        elif item in DATASETS:
            try:
                out.append(data_path(item))
            except DataUnavailable as exc:
                raise click.ClickException(str(exc)) from None
        else:
            raise click.BadParameter(
                f"{item!r} is neither a file nor a dataset name (surveillance data list)",
                param_hint="--data",
            )
    return out


def _horizons(text: str) -> tuple[int, ...]:
    from simulator.units import UnitError, parse_duration

    try:
        hs = tuple(parse_duration(p.strip()) for p in text.split(",") if p.strip())
    except UnitError as exc:
        raise click.BadParameter(str(exc), param_hint="--horizons") from None
    if not hs or min(hs) <= 0 or list(hs) != sorted(set(hs)):
        raise click.BadParameter(
            "give distinct increasing positive durations", param_hint="--horizons"
        )
    return hs


def deeplob_key(items: list[tuple[Path, object]], seed: int) -> str:
    """What a cached DeepLOB depends on: the files' bytes, the horizons, the frozen thresholds,
    the grids and the architecture and training settings."""
    from models.deeplob import DeepLOBConfig, TrainConfig

    h = hashlib.sha256()
    for path, fday in sorted(items, key=lambda it: it[0].name):
        h.update(path.read_bytes())
        h.update(json.dumps(fday.thresholds.as_dict()).encode())  # type: ignore[attr-defined]
    h.update(json.dumps([str(DeepLOBConfig()), str(TrainConfig(seed=seed))]).encode())
    h.update(f"{DEEPLOB_TRAIN_EVERY_S},{DEEPLOB_VAL_EVERY_S},{DEEPLOB_VAL_START}".encode())
    return h.hexdigest()[:12]


def deeplob_for(
    items: list[tuple[Path, object]],
    seed: int,
    cache: Path,
    threads: int,
    progress,
    retrain: bool = False,
):
    """One DeepLOB for the days of ``items`` (path, ``ForecastDay``), as the DeepLOB paper
    trains one model on several stocks (inputs are in basis points and log sizes, so they
    share a scale): from the cache, else trained on the training hours of every day, with
    early stopping on 13:30 to 14:30, and cached. Returns the model and the json beside it."""
    import numpy as np

    from models.deeplob import TrainConfig, load_deeplob, save_deeplob, train_deeplob
    from simulator.units import NS_PER_S, parse_clock
    from surveillance.forecast.evaluate import grid
    from surveillance.forecast.features import snapshot_windows

    key = deeplob_key(items, seed)
    symbols = "-".join(sorted(f.instrument for _, f in items))  # type: ignore[attr-defined]
    ckpt = cache / f"deeplob-{symbols}-{key}.pt"
    if ckpt.exists() and not retrain:
        return load_deeplob(ckpt), json.loads(ckpt.with_suffix(".json").read_text())
    val_start = parse_clock(DEEPLOB_VAL_START)
    xs_tr, ys_tr, xs_va, ys_va, counts = [], [], [], [], {}
    for _, fday in items:
        cfg = fday.config  # type: ignore[attr-defined]
        first = max(cfg.train_start_ns, fday.forks.first_ns)  # type: ignore[attr-defined]
        h = cfg.max_horizon_ns
        tr = grid(first, val_start, DEEPLOB_TRAIN_EVERY_S * NS_PER_S, h)
        va = grid(val_start, cfg.held_out_start_ns, DEEPLOB_VAL_EVERY_S * NS_PER_S, h)
        xs_tr.append(snapshot_windows(fday.forks, tr))  # type: ignore[attr-defined]
        xs_va.append(snapshot_windows(fday.forks, va))  # type: ignore[attr-defined]
        ys_tr.append(fday.labels(tr))  # type: ignore[attr-defined]
        ys_va.append(fday.labels(va))  # type: ignore[attr-defined]
        counts[fday.instrument] = {"train": len(tr), "validation": len(va)}  # type: ignore[attr-defined]
    if progress:
        progress(f"deeplob {symbols}: {counts}")
    model, log = train_deeplob(
        np.concatenate(xs_tr),
        np.concatenate(ys_tr),
        np.concatenate(xs_va),
        np.concatenate(ys_va),
        train=TrainConfig(seed=seed, threads=threads),
        progress=progress,
    )
    meta = {
        "instruments": symbols,
        "data": [p.name for p, _ in items],
        "key": key,
        "samples": counts,
        "training": log.as_dict(),
    }
    save_deeplob(ckpt, model, meta)
    return model, meta


def _train_options(f):
    for opt in reversed(
        [
            click.option(
                "--data",
                "data",
                multiple=True,
                default=DEFAULT_DATA,
                show_default=True,
                help="LOBSTER zip or registry dataset name; repeat for several instruments "
                "(their figures are pooled).",
            ),
            click.option(
                "--horizons", default="1m,2m,3m,4m,5m", show_default=True, help="Horizons."
            ),
            click.option("--seed", default=0, show_default=True, type=int),
            click.option(
                "--cache-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Where trained DeepLOB models are kept (default: the user cache, "
                "mars-surveillance/forecast).",
            ),
            click.option("--threads", default=1, show_default=True, help="torch threads."),
        ]
    ):
        f = opt(f)
    return f


@click.group("forecast", invoke_without_command=True)
@_train_options
@click.option("--start", default="14:30", show_default=True, help="First start time, HH:MM.")
@click.option("--end", default="16:00", show_default=True, help="Horizons end by then, HH:MM.")
@click.option("--every", default=DEFAULT_EVERY, show_default=True, help="Start-time spacing.")
@click.option("--rollouts", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option(
    "--generator",
    "generator_kind",
    type=click.Choice(["lmm", "empirical"]),
    default="lmm",
    show_default=True,
    help="The order model, or the empirical (resampling) baseline generator.",
)
@click.option(
    "--model",
    "models",
    type=click.Path(path_type=Path),
    multiple=True,
    help="Order-model checkpoint (default: the bundled one); repeat for a mixture.",
)
@click.option("--deeplob/--no-deeplob", default=True, show_default=True)
@click.option(
    "--jobs",
    default=DEFAULT_JOBS,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes forking start times in parallel (same figures as with one).",
)
@click.option("--report", type=click.Path(path_type=Path), default=None, help="HTML report.")
@click.option(
    "--arrays",
    type=click.Path(path_type=Path),
    default=None,
    help="Also save every start's forecasts and outcomes (.npz) to re-score without forking.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.pass_context
def command(
    ctx: click.Context,
    data: tuple[str, ...],
    horizons: str,
    seed: int,
    cache_dir: Path | None,
    threads: int,
    start: str,
    end: str,
    every: str,
    rollouts: int,
    generator_kind: str,
    models: tuple[Path, ...],
    deeplob: bool,
    jobs: int,
    report: Path | None,
    arrays: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Forecast the mid-price trend by forking the engine at every start time.

    The class (down, flat, up) of l = (mean mid after each order within the horizon - m0)/m0,
    with thresholds at the terciles of the training hours (before 14:30), is forecast by the
    majority of the rollouts, and the mid at each horizon by their distribution (CRPS, 50%
    and 90% coverage). Baselines on the same start times: most frequent class, no change,
    logistic regression on imbalance and recent returns, DeepLOB (trained on the training
    hours, or read from the cache). Scores carry block-bootstrap 95% intervals.
    """
    if ctx.invoked_subcommand is not None:
        return
    import time

    from simulator.engine import Engine
    from simulator.lobster import load_lobster
    from simulator.units import UnitError, parse_clock, parse_duration
    from surveillance.cli.commands.realism import build_generator, generator_of
    from surveillance.forecast.evaluate import (
        ForecastConfig,
        ForecastDay,
        ForecastReport,
        forecast_instrument,
        grid,
    )
    from surveillance.forecast.targets import ForecastError

    hs = _horizons(horizons)
    try:
        start_ns, end_ns = parse_clock(start), parse_clock(end)
    except UnitError as exc:
        raise click.BadParameter(str(exc), param_hint="--start/--end") from None
    try:
        every_ns = parse_duration(every)
    except UnitError as exc:
        raise click.BadParameter(str(exc), param_hint="--every") from None
    if threads <= 0:
        raise click.BadParameter("--threads must be positive")
    paths = _data_paths(data)
    config = ForecastConfig(horizons_ns=hs, rollouts=rollouts, seed=seed)
    try:
        starts = grid(start_ns, end_ns, every_ns, config.max_horizon_ns)
    except ForecastError as exc:
        raise click.ClickException(str(exc)) from None
    # progress goes to stderr, so that --json keeps stdout to the one object
    progress = None if quiet else (lambda line: click.echo(line, err=True))
    cache = _cache_dir(cache_dir)
    t_all = time.perf_counter()
    forecasts, names, seconds, notes = [], [], {}, []
    deeplob_meta: dict[str, object] = {}
    items = []
    for path in paths:
        t0 = time.perf_counter()
        day = load_lobster(path)
        try:
            items.append((path, ForecastDay.prepare(day, config)))
        except ForecastError as exc:
            raise click.ClickException(str(exc)) from None
        seconds[f"{day.symbol}_prepare"] = time.perf_counter() - t0
        if start_ns < config.held_out_start_ns:
            notes.append(f"{day.symbol}: start times before 14:30 lie in the training hours")
    dl_model = None
    if deeplob:
        t0 = time.perf_counter()
        dl_model, deeplob_meta = deeplob_for(items, seed, cache, threads, progress)
        seconds["deeplob"] = time.perf_counter() - t0
    for _path, fday in items:
        t0 = time.perf_counter()
        day = fday.day
        external = {}
        if dl_model is not None:
            from models.deeplob import predict_classes
            from surveillance.forecast.features import snapshot_windows

            external["deeplob"] = predict_classes(dl_model, snapshot_windows(fday.forks, starts))
        build_args = (
            generator_kind,
            models,
            day.instrument.tick_size,
            None,
            threads,
            {"temperature": None, "top_p": None},
        )
        sampler, name = build_generator(*build_args)
        names.append(name)
        try:
            fc = forecast_instrument(
                fday,
                Engine(sampler),  # type: ignore[arg-type]
                starts,
                external=external,
                jobs=jobs,
                sampler_factory=functools.partial(generator_of, *build_args),
                progress=progress,
            )
        except ForecastError as exc:
            raise click.ClickException(str(exc)) from None
        forecasts.append(fc)
        seconds[f"{day.symbol}_fork"] = fc.fork_seconds
        seconds[f"{day.symbol}_forecast"] = time.perf_counter() - t0
    out_report = ForecastReport(
        config,
        every_ns,
        forecasts,
        generator="+".join(sorted(set(names))),
        notes=notes,
        seconds=seconds,
    )
    if arrays is not None:
        from surveillance.forecast.evaluate import save_arrays

        save_arrays(str(arrays), forecasts)
    out = out_report.as_dict()
    out["deeplob"] = deeplob_meta
    seconds["total"] = time.perf_counter() - t_all
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    if report is not None:
        from surveillance.forecast.report import write_forecast_report

        write_forecast_report(report, out)
    if as_json:
        click.echo(json.dumps(out))
        return
    _print_summary(out)


def _print_summary(out: dict) -> None:
    pooled = out["pooled"]
    click.echo(
        f"{', '.join(out['instruments'])}  generator={out['generator']}  "
        f"starts={pooled['starts']}  rollouts={out['settings']['rollouts']}"
    )
    methods = list(pooled["per_horizon"][0]["methods"])
    click.echo("macro-F1 (95% block-bootstrap interval), pooled")
    click.echo(f"{'horizon':<9}" + "".join(f"{m:>22}" for m in methods))
    for row in pooled["per_horizon"]:
        cells = []
        for m in methods:
            f = row["methods"][m]["macro_f1"]
            cells.append(f"{f['value']:.3f} [{f['low']:.2f},{f['high']:.2f}]")
        click.echo(f"{row['horizon_s']:>5}s   " + "".join(f"{c:>22}" for c in cells))
    click.echo(f"{'horizon':<9}{'CRPS bps':>10}{'no-change':>11}{'cov50':>7}{'cov90':>7}")
    for row in pooled["per_horizon"]:
        c = row["crps_bps"]
        click.echo(
            f"{row['horizon_s']:>5}s   {c['engine']['value']:>10.3f}{c['no_change']['value']:>11.3f}"
            f"{row['coverage']['50']['value']:>7.2f}{row['coverage']['90']['value']:>7.2f}"
        )
    for goal, ok in out["goals"].items():
        click.echo(f"goal {goal}: {'met' if ok else 'not met'}")
    for note in out["notes"]:
        click.echo(f"note: {note}")


@command.command("score")
@click.argument("arrays", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--rollouts", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--report", type=click.Path(path_type=Path), default=None, help="HTML report.")
@click.option(
    "--deeplob-data",
    "deeplob_data",
    multiple=True,
    help="Forecast DeepLOB's classes again at the saved start times with the DeepLOB of "
    "these days (trained or cached as the forecast command does); one per saved instrument.",
)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.option("--threads", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def score_command(
    arrays: tuple[Path, ...],
    rollouts: int,
    seed: int,
    report: Path | None,
    deeplob_data: tuple[str, ...],
    cache_dir: Path | None,
    threads: int,
    as_json: bool,
) -> None:
    """Score saved runs (``--arrays`` files) again, pooled: runs over interleaved start times
    of the same instruments combine into one (two runs 120 s apart, offset by 60 s, give the
    60 s grid)."""
    import numpy as np

    from surveillance.forecast.evaluate import (
        ForecastConfig,
        ForecastReport,
        combine,
        load_arrays,
    )
    from surveillance.forecast.targets import ForecastError

    try:
        forecasts = combine([f for path in arrays for f in load_arrays(str(path))])
    except ForecastError as exc:
        raise click.ClickException(str(exc)) from None
    hs = forecasts[0].thresholds.horizons_ns
    notes = [f"re-scored from {len(arrays)} file(s)"]
    meta: dict[str, object] = {}
    if deeplob_data:
        meta = _refresh_deeplob(forecasts, deeplob_data, seed, cache_dir, threads)
        notes.append("DeepLOB's classes forecast again at the saved start times")
    steps = [int(np.min(np.diff(f.starts_ns))) for f in forecasts if len(f.starts_ns) > 1]
    every_ns = min(steps) if steps else hs[-1]
    config = ForecastConfig(horizons_ns=hs, rollouts=rollouts, seed=seed)
    d = ForecastReport(config, every_ns, forecasts, notes=notes).as_dict()
    d["deeplob"] = meta
    if report is not None:
        from surveillance.forecast.report import write_forecast_report

        write_forecast_report(report, d)
    if as_json:
        click.echo(json.dumps(d))
    else:
        _print_summary(d)


def _refresh_deeplob(forecasts, data, seed, cache_dir, threads) -> dict[str, object]:
    """Replace each saved forecast's DeepLOB classes with the current DeepLOB's."""
    from models.deeplob import predict_classes
    from simulator.lobster import load_lobster
    from surveillance.forecast.evaluate import ForecastConfig, ForecastDay
    from surveillance.forecast.features import snapshot_windows

    hs = forecasts[0].thresholds.horizons_ns
    config = ForecastConfig(horizons_ns=hs, seed=seed)
    items = [(p, ForecastDay.prepare(load_lobster(p), config)) for p in _data_paths(data)]
    by_symbol = {f.instrument: f for _, f in items}
    for fc in forecasts:
        fday = by_symbol.get(fc.instrument)
        if fday is None or fday.thresholds != fc.thresholds:
            raise click.ClickException(
                f"{fc.instrument}: no --deeplob-data day with its thresholds"
            )
    model, meta = deeplob_for(
        items, seed, _cache_dir(cache_dir), threads, lambda s: click.echo(s, err=True)
    )
    for fc in forecasts:
        starts = [int(s) for s in fc.starts_ns]
        classes = predict_classes(model, snapshot_windows(by_symbol[fc.instrument].forks, starts))
        fc.predictions = {m: (classes if m == "deeplob" else v) for m, v in fc.predictions.items()}
        if "deeplob" not in fc.predictions:
            fc.predictions["deeplob"] = classes
    return meta


@command.command("train-deeplob")
@_train_options
@click.option("--retrain", is_flag=True, help="Train even when the cache holds the model.")
def train_deeplob_command(
    data: tuple[str, ...],
    horizons: str,
    seed: int,
    cache_dir: Path | None,
    threads: int,
    retrain: bool,
) -> None:
    """Train (or find in the cache) one DeepLOB on the days' training hours and print its
    training log."""
    from simulator.lobster import load_lobster
    from surveillance.forecast.evaluate import ForecastConfig, ForecastDay

    config = ForecastConfig(horizons_ns=_horizons(horizons), seed=seed)
    cache = _cache_dir(cache_dir)
    if threads <= 0:
        raise click.BadParameter("--threads must be positive")
    items = [(p, ForecastDay.prepare(load_lobster(p), config)) for p in _data_paths(data)]
    _, meta = deeplob_for(items, seed, cache, threads, lambda s: click.echo(s, err=True), retrain)
    click.echo(json.dumps(meta))
