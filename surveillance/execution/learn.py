"""Policies for the execution environment, paired episodes, and the learner.

- ``FixedAction``: the same action every interval (each TWAP setting of the grid; the sweep
  action at the first step is the immediate order).
- ``LinearPolicy``: the action with the highest linear score of the observation.
- ``train_learner``: a bandit over the fixed settings on training episodes picks the best
  one; the cross-entropy method then refines a linear policy started at it (its bias on that
  action), with every candidate of an iteration scored on the same episodes (common random
  numbers: the ranking is of policies, not of markets). A final check on fresh training
  episodes keeps the refined policy only if it beats its start there. Every choice ranks
  policies that fill at least ``FILL_GOAL`` first (``score``), as the evaluation's reference
  (the best fixed setting) is chosen among those.
- ``run_episodes``: a policy on a list of (seed, start) episodes. Two policies run on the same
  list meet the same markets until their actions differ: the episode seed fixes every fork's
  seed, so their shortfall difference is the policies', not the noise's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from surveillance.execution.env import FEATURES, ExecutionEnv


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def __call__(self, obs: np.ndarray) -> int: ...


@dataclass(frozen=True, slots=True)
class FixedAction:
    """The same action every interval."""

    action: int
    name: str

    def __call__(self, obs: np.ndarray) -> int:
        return self.action


@dataclass(frozen=True, slots=True)
class LinearPolicy:
    """``argmax_a  weights[a] . (obs, 1)``: one row of weights per action, bias last."""

    weights: np.ndarray  # (actions, features + 1)
    name: str = "learner"

    def __call__(self, obs: np.ndarray) -> int:
        x = np.append(np.asarray(obs, np.float64), 1.0)
        return int(np.argmax(self.weights @ x))

    @classmethod
    def favouring(cls, action: int, actions: int, bias: float, name: str) -> LinearPolicy:
        w = np.zeros((actions, len(FEATURES) + 1))
        w[action, -1] = bias
        return cls(w, name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "features": list(FEATURES), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LinearPolicy:
        if list(d.get("features", [])) != list(FEATURES):
            raise ValueError("the policy was trained on other observation features")
        return cls(np.asarray(d["weights"], np.float64), str(d.get("name", "learner")))


@dataclass(frozen=True, slots=True)
class Episode:
    """One episode of one policy."""

    seed: int
    start_ns: int
    shortfall_bps: float  # the whole order's, unfilled shares charged (minus the return)
    filled_shortfall_bps: float  # of the filled shares alone
    fill_rate: float
    actions: tuple[int, ...]


def run_episode(env: ExecutionEnv, policy: Policy, seed: int, start_ns: int) -> Episode:
    obs, info = env.reset(seed=seed, options={"start_ns": start_ns})
    actions = []
    while True:
        a = policy(obs)
        actions.append(a)
        obs, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            break
    return Episode(
        seed,
        start_ns,
        float(info["shortfall_bps"]),
        float(info["filled_shortfall_bps"]),
        float(info["fill_rate"]),
        tuple(actions),
    )


def run_episodes(
    env: ExecutionEnv, policy: Policy, episodes: Sequence[tuple[int, int]]
) -> list[Episode]:
    """``policy`` on every (seed, start) episode, in order."""
    return [run_episode(env, policy, s, t) for s, t in episodes]


def episode_list(starts: Sequence[int], n: int, seed: int, spread: bool) -> list[tuple[int, int]]:
    """``n`` (seed, start) episodes: starts evenly spread over ``starts`` (``spread``) or drawn
    from them, each with its own seed, all from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, int(spread)]))
    if spread:
        idx = np.linspace(0, len(starts) - 1, n).round().astype(int)
    else:
        idx = rng.integers(len(starts), size=n)
    seeds = rng.integers(2**31, size=n)
    return [(int(s), int(starts[i])) for s, i in zip(seeds, idx, strict=True)]


FILL_GOAL = 0.98  # the fill rate a policy must reach to compete on shortfall
INFEASIBLE_BPS = 1_000.0  # what ranks a policy below every one that reaches FILL_GOAL


def mean_shortfall(episodes: Sequence[Episode]) -> float:
    return float(np.mean([e.shortfall_bps for e in episodes]))


def fill_rate(episodes: Sequence[Episode]) -> float:
    return float(np.mean([e.fill_rate for e in episodes]))


def score(episodes: Sequence[Episode]) -> float:
    """What the learner minimises: the mean shortfall, with policies that fill less than
    ``FILL_GOAL`` ranked after all that do (by shortfall among themselves). The unfilled
    penalty alone let a passive setting trade a tenth of the order for a basis point."""
    return mean_shortfall(episodes) + (INFEASIBLE_BPS if fill_rate(episodes) < FILL_GOAL else 0)


@dataclass(frozen=True, slots=True)
class TrainSettings:
    bandit_episodes: int = 16  # episodes per fixed setting in the bandit
    iterations: int = 5
    population: int = 12
    episodes: int = 8  # per candidate per iteration (the same for every candidate)
    elite: float = 0.25
    bias: float = 1.0  # the start's bias on the best fixed action
    sigma: float = 0.5  # the start's spread of every weight
    validation: int = 24  # fresh training episodes for the final check
    seed: int = 0

    def episodes_total(self, actions: int) -> int:
        return (
            actions * self.bandit_episodes
            + self.iterations * self.population * self.episodes
            + 2 * self.validation
        )


@dataclass(slots=True)
class Trained:
    """What ``train_learner`` found."""

    policy: LinearPolicy
    start_action: int
    bandit: dict[str, float]  # mean shortfall of each fixed setting on the bandit's episodes
    curve: list[dict[str, float]] = field(default_factory=list)  # per CEM iteration
    validation: dict[str, float] = field(default_factory=dict)
    kept: str = "cem"  # "cem" or "start": which policy the final check kept
    episodes: int = 0


def train_learner(
    env: ExecutionEnv,
    starts: Sequence[int],
    settings: TrainSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> Trained:
    """Bandit then cross-entropy method on the training starts (module docstring)."""
    s = settings or TrainSettings()
    cfg = env.config
    say = progress or (lambda _: None)
    run = 0
    bandit_eps = episode_list(starts, s.bandit_episodes, s.seed * 7 + 1, spread=False)
    bandit: dict[str, float] = {}
    ranked: dict[str, float] = {}
    for a in range(cfg.actions):
        name = cfg.action_name(a)
        runs = run_episodes(env, FixedAction(a, name), bandit_eps)
        bandit[name] = mean_shortfall(runs)
        ranked[name] = score(runs)
        run += len(bandit_eps)
    start_action = min(range(cfg.actions), key=lambda a: ranked[cfg.action_name(a)])
    say(f"bandit: best fixed setting {cfg.action_name(start_action)} "
        f"({bandit[cfg.action_name(start_action)]:.3f} bps)")  # fmt: skip
    start = LinearPolicy.favouring(start_action, cfg.actions, s.bias, "learner")
    mean = start.weights.copy()
    sigma = np.full_like(mean, s.sigma)
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, 29]))
    n_elite = max(1, round(s.elite * s.population))
    curve = []
    for it in range(s.iterations):
        eps = episode_list(starts, s.episodes, s.seed * 1_000 + it, spread=False)
        cands = [mean] + [mean + sigma * rng.standard_normal(mean.shape)
                          for _ in range(s.population - 1)]  # fmt: skip
        results = [run_episodes(env, LinearPolicy(w), eps) for w in cands]
        scores = [score(r) for r in results]
        run += len(cands) * len(eps)
        order = np.argsort(scores)
        elite = np.stack([cands[i] for i in order[:n_elite]])
        mean = elite.mean(axis=0)
        # a floor on the spread keeps the search alive past a lucky first elite
        sigma = np.maximum(elite.std(axis=0), 0.05)
        curve.append(
            {
                "iteration": it + 1,
                "mean_candidate_bps": mean_shortfall(results[0]),
                "best_bps": mean_shortfall(results[order[0]]),
                "elite_bps": float(np.mean([mean_shortfall(results[i]) for i in order[:n_elite]])),
                "elite_fill_rate": float(np.mean([fill_rate(results[i]) for i in order[:n_elite]])),
            }
        )
        say(f"cem {it + 1}/{s.iterations}: best {curve[-1]['best_bps']:.3f} bps, "
            f"elite {curve[-1]['elite_bps']:.3f} bps")  # fmt: skip
    learned = LinearPolicy(mean)
    val = episode_list(starts, s.validation, s.seed * 1_000 + 999, spread=False)
    r_learned = run_episodes(env, learned, val)
    r_start = run_episodes(env, start, val)
    run += 2 * len(val)
    kept = "cem" if score(r_learned) <= score(r_start) else "start"
    v = {
        "cem_bps": mean_shortfall(r_learned),
        "cem_fill_rate": fill_rate(r_learned),
        "start_bps": mean_shortfall(r_start),
        "start_fill_rate": fill_rate(r_start),
    }
    say(f"check: cem {v['cem_bps']:.3f} bps, start {v['start_bps']:.3f} bps -> {kept}")
    return Trained(
        learned if kept == "cem" else start,
        start_action,
        bandit,
        curve,
        v,
        kept,
        run,
    )


@dataclass(frozen=True, slots=True)
class Paired:
    """A policy's mean shortfall difference to a reference over the same episodes, with a
    95% t interval (negative: the policy's shortfall is lower)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        if self.high < 0:
            return "better"
        if self.low > 0:
            return "worse"
        return "no difference"


def paired(a: Sequence[Episode], b: Sequence[Episode]) -> Paired:
    """``a`` minus ``b``, episode by episode (the same seeds and starts)."""
    from scipy import stats

    if [(e.seed, e.start_ns) for e in a] != [(e.seed, e.start_ns) for e in b]:
        raise ValueError("paired comparison of different episodes")
    d = np.array([x.shortfall_bps - y.shortfall_bps for x, y in zip(a, b, strict=True)])
    n = len(d)
    m = float(d.mean())
    if n < 2 or not np.any(d != d[0]):
        return Paired(m, m, m, n)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n))
    return Paired(m, m - half, m + half, n)
