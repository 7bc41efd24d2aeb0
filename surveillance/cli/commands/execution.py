"""``surveillance execution train|evaluate``: the execution environment's learner and its
evaluation against every fixed TWAP setting and the immediate order (paired seeds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

GENERATORS = ("empirical", "lmm")


def _data_path(data: str) -> Path:
    """A data registry name (``lobster-goog-10``) or a LOBSTER zip's path."""
    from surveillance.datasets import DATASETS, DataUnavailable, data_path

    if data in DATASETS:
        try:
            return data_path(data)
        except DataUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    path = Path(data)
    if not path.exists():
        raise click.ClickException(f"no such data file or dataset name: {data}")
    return path


def _load(data: str, generator: str, models: tuple[Path, ...], threads: int) -> tuple[Any, ...]:
    from simulator.dayforks import DayForks
    from simulator.lobster import load_lobster
    from surveillance.cli.commands.realism import build_generator

    day = load_lobster(_data_path(data))
    sampler, version = build_generator(generator, models, day.instrument.tick_size, None, threads)
    return DayForks(day), sampler, version


def make_lmm_env(
    data: str = "lobster-goog-10", hours: str = "train", model: str | None = None, **config: Any
) -> Any:
    """The gymnasium entry point of ``surveillance/ExecutionLMM-v0``: the environment on forks
    driven by the bundled order model (or ``model``)."""
    from surveillance.execution import make_env

    forks, sampler, _ = _load(data, "lmm", (Path(model),) if model else (), 1)
    return make_env(data=forks, hours=hours, sampler=sampler, **config)


def _config(side: str, qty: int, horizon: str, interval: str, penalty: float) -> Any:
    from simulator.units import UnitError, parse_duration
    from surveillance.execution import ExecutionConfig, ExecutionError

    try:
        interval_ns = parse_duration(interval)
        return ExecutionConfig(
            side=1 if side == "buy" else -1,
            qty=qty,
            horizon_ns=parse_duration(horizon),
            interval_ns=interval_ns,
            passive_ns=interval_ns * 5 // 6,  # the paper's 25 s of 30
            penalty_bps=penalty,
        )
    except (UnitError, ExecutionError) as exc:
        raise click.BadParameter(str(exc)) from None


def _common(command: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--data",
                required=True,
                help="A data registry name (lobster-goog-10, lobster-amzn-5) or a LOBSTER zip.",
            ),
            click.option(
                "--generator",
                type=click.Choice(GENERATORS),
                default="empirical",
                show_default=True,
                help="Who drives the forks: the empirical (resampling) generator, or the "
                "trained order model (bundled unless --model).",
            ),
            click.option(
                "--model",
                "models",
                type=click.Path(path_type=Path),
                multiple=True,
                help="Order-model checkpoint for --generator lmm (default: the bundled one).",
            ),
            click.option(
                "--threads",
                default=1,
                show_default=True,
                type=click.IntRange(1, 64),
                help="torch threads for the order model.",
            ),
            click.option("--seed", default=0, show_default=True, type=int),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
        ]
    ):
        command = option(command)
    return command


@click.group("execution")
def command() -> None:
    """Execute a parent order on forks of a real book: train a learner on the training hours,
    evaluate it against every fixed TWAP setting and the immediate order on the held-out hours
    (14:30-16:00), on the same seeds."""


@command.command("train")
@_common
@click.option("--side", type=click.Choice(["buy", "sell"]), default="buy", show_default=True)
@click.option("--qty", default=1000, show_default=True, type=click.IntRange(1, None))
@click.option("--horizon", default="5m", show_default=True, help="Time to execute the order.")
@click.option("--interval", default="30s", show_default=True, help="Decision interval.")
@click.option(
    "--penalty", default=10.0, show_default=True, help="bps per unfilled share at the horizon."
)
@click.option("--bandit-episodes", default=16, show_default=True, type=click.IntRange(1, None))
@click.option("--iterations", default=5, show_default=True, type=click.IntRange(0, None))
@click.option("--population", default=12, show_default=True, type=click.IntRange(2, None))
@click.option("--episodes", default=8, show_default=True, type=click.IntRange(1, None))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Policy file to write [default: execution-policy-<instrument>.json].",
)
def train_command(
    data: str,
    generator: str,
    models: tuple[Path, ...],
    threads: int,
    seed: int,
    as_json: bool,
    side: str,
    qty: int,
    horizon: str,
    interval: str,
    penalty: float,
    bandit_episodes: int,
    iterations: int,
    population: int,
    episodes: int,
    out: Path | None,
) -> None:
    """Train the learner (bandit over the TWAP grid, then the cross-entropy method on a linear
    policy) on forks of the training hours; write the policy file."""
    from surveillance.execution import TrainSettings, study

    config = _config(side, qty, horizon, interval, penalty)
    forks, sampler, version = _load(data, generator, models, threads)
    settings = TrainSettings(
        bandit_episodes=bandit_episodes,
        iterations=iterations,
        population=population,
        episodes=episodes,
        seed=seed,
    )
    say = None if as_json else (lambda line: click.echo(line, err=True))
    result = study.train(forks, sampler, config, settings, say)
    result["generator"] = version
    path = out or Path(f"execution-policy-{result['instrument']}.json")
    path.write_text(json.dumps(result, indent=1))
    result["policy_file"] = str(path)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['instrument']}: start {result['start_action']}, kept {result['kept']} "
        f"(check on training episodes: {result['validation_bps']}), {result['episodes']} "
        f"episodes in {result['seconds']:.0f} s -> {path}"
    )


@command.command("evaluate")
@_common
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    default=None,
    help="The learner's policy file from `execution train` (its order settings are used); "
    "without it, only the fixed settings and the immediate order are evaluated.",
)
@click.option("--side", type=click.Choice(["buy", "sell"]), default="buy", show_default=True)
@click.option("--qty", default=1000, show_default=True, type=click.IntRange(1, None))
@click.option("--horizon", default="5m", show_default=True)
@click.option("--interval", default="30s", show_default=True)
@click.option("--penalty", default=10.0, show_default=True)
@click.option(
    "--episodes",
    default=40,
    show_default=True,
    type=click.IntRange(2, None),
    help="Held-out episodes, starts spread over 14:30-16:00, the same for every policy.",
)
@click.option(
    "--only",
    default="",
    help="Comma-separated policy names to evaluate (e.g. learner,twap-p0.5-l2,immediate): "
    "the order model's runs are costly. Default: every policy.",
)
@click.option("--report", type=click.Path(path_type=Path), default=None, help="HTML report.")
def evaluate_command(
    data: str,
    generator: str,
    models: tuple[Path, ...],
    threads: int,
    seed: int,
    as_json: bool,
    policy_file: Path | None,
    side: str,
    qty: int,
    horizon: str,
    interval: str,
    penalty: float,
    episodes: int,
    only: str,
    report: Path | None,
) -> None:
    """Every fixed TWAP setting, the immediate order and the learner on the same held-out
    episodes; paired 95% intervals against the best fixed setting."""
    from surveillance.execution import study
    from surveillance.execution.report import write_report

    trained: dict[str, Any] | None = None
    policy = None
    if policy_file is not None:
        policy, config, trained = study.load_policy(policy_file)
    else:
        config = _config(side, qty, horizon, interval, penalty)
    forks, sampler, version = _load(data, generator, models, threads)
    if trained is not None and trained.get("instrument") != forks.day.symbol:
        click.echo(
            f"warning: the policy was trained on {trained.get('instrument')}, evaluated on "
            f"{forks.day.symbol}",
            err=True,
        )
    say = None if as_json else (lambda line: click.echo(line, err=True))
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    result = study.evaluate(forks, sampler, config, policy, episodes, seed, say, names)
    result["generator"] = version
    if report is not None:
        write_report(report, result, trained)
        result["report"] = str(report)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(
        f"{result['instrument']} {result['hours'][0]}-{result['hours'][1]}, {episodes} paired "
        f"episodes, {version}; best fixed TWAP {result['best_twap']}"
    )
    click.echo(f"{'policy':<16}{'IS bps':>9}{'fill':>7}{'vs best':>9}{'95% interval':>20}")
    for r in result["policies"]:
        click.echo(
            f"{r['policy']:<16}{r['shortfall_bps']:>9.3f}{r['fill_rate']:>7.3f}"
            f"{r['vs_best_twap_bps']:>+9.3f}   [{r['vs_best_twap_low']:+.3f}, "
            f"{r['vs_best_twap_high']:+.3f}] {r['vs_best_twap']}"
        )
    if "goal" in result:
        g = result["goal"]
        click.echo(
            f"goal (learner not worse than the best fixed TWAP, fill >= 0.98): "
            f"{'met' if g['met'] else 'not met'}"
        )
    click.echo(f"{result['seconds']:.0f} s")
