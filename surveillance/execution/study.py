"""The execution study on a recorded day: train the learner on forks of the training hours,
evaluate it against every fixed TWAP setting and the immediate order on forks of the held-out
hours, with paired seeds. What ``surveillance execution train|evaluate`` runs.

The order model trained on each day up to 14:30, so episodes of the training hours start
from 10:00 and end by 14:30, and the evaluated ones start from 14:30 and end by 16:00.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from simulator.dayforks import DayForks
from simulator.engine import Sampler
from simulator.lobster import LobsterDay
from simulator.units import NS_PER_MIN, clock, parse_clock
from surveillance.execution.env import ExecutionConfig, ExecutionEnv
from surveillance.execution.learn import (
    FILL_GOAL,
    Episode,
    FixedAction,
    LinearPolicy,
    Policy,
    TrainSettings,
    episode_list,
    paired,
    run_episodes,
    train_learner,
)
from surveillance.execution.market import DaySource, ExecutionError

TRAIN_HOURS = ("10:00", "14:30")
TEST_HOURS = ("14:30", "16:00")
START_EVERY_NS = NS_PER_MIN


def starts_between(first: str, last: str, horizon_ns: int) -> list[int]:
    """Episode starts every minute from ``first`` with the episode over by ``last``."""
    t0, t1 = parse_clock(first), parse_clock(last)
    out = list(range(t0, t1 - horizon_ns + 1, START_EVERY_NS))
    if not out:
        raise ExecutionError(f"no {horizon_ns // NS_PER_MIN}-minute episode fits {first}-{last}")
    return out


def day_env(
    day: LobsterDay | DayForks,
    sampler: Sampler,
    config: ExecutionConfig,
    hours: tuple[str, str],
) -> ExecutionEnv:
    """The environment on forks of a recorded day, starting within ``hours``."""
    forks = day if isinstance(day, DayForks) else DayForks(day)
    starts = starts_between(*hours, config.horizon_ns)
    return ExecutionEnv(DaySource(forks, starts, config.horizon_ns), sampler, config)


def train(
    day: LobsterDay | DayForks,
    sampler: Sampler,
    config: ExecutionConfig,
    settings: TrainSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The learner trained on the training hours: a JSON-ready dict that ``evaluate`` reads
    back (``policy``) with how training went."""
    settings = settings or TrainSettings()
    t0 = time.perf_counter()
    env = day_env(day, sampler, config, TRAIN_HOURS)
    found = train_learner(env, env.market.starts_ns, settings, progress)
    return {
        "instrument": env.market.instrument,
        "hours": list(TRAIN_HOURS),
        "config": config_dict(config),
        "settings": asdict(settings),
        "policy": found.policy.to_dict(),
        "start_action": config.action_name(found.start_action),
        "bandit_bps": found.bandit,
        "curve": found.curve,
        "validation_bps": found.validation,
        "kept": found.kept,
        "episodes": found.episodes,
        "seconds": time.perf_counter() - t0,
    }


def config_dict(config: ExecutionConfig) -> dict[str, Any]:
    d = asdict(config)
    d.pop("grid")
    return d


def config_of(d: dict[str, Any]) -> ExecutionConfig:
    fields = dict(d)
    for k in ("pvr", "levels"):
        fields[k] = tuple(fields[k])
    return ExecutionConfig(**fields)


def evaluate(
    day: LobsterDay | DayForks,
    sampler: Sampler,
    config: ExecutionConfig,
    policy: LinearPolicy | None,
    episodes: int = 40,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    only: Sequence[str] = (),
) -> dict[str, Any]:
    """Every fixed TWAP setting, the immediate order and the learner (when given) on the same
    ``episodes`` held-out episodes (starts spread over the held-out hours, paired seeds);
    ``only``: just the policies so named (the order model's runs are costly)."""
    say = progress or (lambda _: None)
    t0 = time.perf_counter()
    env = day_env(day, sampler, config, TEST_HOURS)
    eps = episode_list(env.market.starts_ns, episodes, seed, spread=True)
    policies: list[tuple[str, Policy]] = [
        (config.action_name(a), FixedAction(a, config.action_name(a)))
        for a in range(len(config.grid))
    ]
    policies.append(("immediate", FixedAction(config.sweep, "immediate")))
    if policy is not None:
        policies.append(("learner", policy))
    if only:
        unknown = set(only) - {n for n, _ in policies}
        if unknown:
            raise ExecutionError(f"no policy named {', '.join(sorted(unknown))} to evaluate")
        policies = [(n, p) for n, p in policies if n in only]
        if not any(n.startswith("twap-") for n, _ in policies):
            raise ExecutionError("evaluate at least one fixed TWAP setting (the reference)")
    runs: dict[str, list[Episode]] = {}
    for name, p in policies:
        runs[name] = run_episodes(env, p, eps)
        say(f"{name}: {np.mean([e.shortfall_bps for e in runs[name]]):.3f} bps")
    # The reference executes the order: the best fixed setting among those that fill at least
    # FILL_GOAL (a setting that mostly does not trade only bets on the price).
    twaps = [n for n, _ in policies if n.startswith("twap-")]
    filling = [n for n in twaps if np.mean([e.fill_rate for e in runs[n]]) >= FILL_GOAL]
    best = min(filling or twaps, key=lambda n: np.mean([e.shortfall_bps for e in runs[n]]))
    rows: list[dict[str, Any]] = []
    for name, _ in policies:
        r = runs[name]
        vs = paired(r, runs[best])
        rows.append(
            {
                "policy": name,
                "shortfall_bps": float(np.mean([e.shortfall_bps for e in r])),
                "filled_shortfall_bps": float(np.mean([e.filled_shortfall_bps for e in r])),
                "fill_rate": float(np.mean([e.fill_rate for e in r])),
                "complete": float(np.mean([e.fill_rate >= 1.0 for e in r])),
                "vs_best_twap_bps": vs.mean,
                "vs_best_twap_low": vs.low,
                "vs_best_twap_high": vs.high,
                "vs_best_twap": vs.verdict,
            }
        )
    out: dict[str, Any] = {
        "instrument": env.market.instrument,
        "hours": list(TEST_HOURS),
        "config": config_dict(config),
        "episodes": episodes,
        "seed": seed,
        "starts": [clock(t) for _, t in eps],
        "best_twap": best,
        "policies": rows,
        "seconds": time.perf_counter() - t0,
    }
    if "learner" in runs:
        learner = next(r for r in rows if r["policy"] == "learner")
        out["goal"] = {
            "learner_vs_best_twap": learner["vs_best_twap"],
            "learner_fill_rate": learner["fill_rate"],
            "met": learner["vs_best_twap"] != "worse" and float(learner["fill_rate"]) >= FILL_GOAL,
        }
        counts = np.bincount(
            [a for e in runs["learner"] for a in e.actions], minlength=config.actions
        )
        out["learner_actions"] = {
            config.action_name(a): int(c) for a, c in enumerate(counts.tolist()) if c
        }
    out["per_episode"] = {name: [round(e.shortfall_bps, 4) for e in r] for name, r in runs.items()}
    return out


def load_policy(path: Path) -> tuple[LinearPolicy, ExecutionConfig, dict[str, Any]]:
    """A policy file written by ``train`` (its policy, the config it was trained with)."""
    import json

    try:
        d = json.loads(Path(path).read_text())
        return LinearPolicy.from_dict(d["policy"]), config_of(d["config"]), d
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExecutionError(f"cannot read the policy file {path}: {exc}") from None
