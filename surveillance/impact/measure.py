"""Market impact of a metaorder, measured on paired forks of a real book (paper, Sec. 3.2 and 4.3,
App. H and K).

Method. At ``start`` the real book is forked into ``rollouts`` futures twice with the same seeds:
once as the market would have gone on (the *baseline* request) and once with an execution agent
acting inside every rollout (``simulator.agents``: a TWAP, a POV or one immediate order); the two
``ForkRequest`` differ only in ``agents``. Rollout ``i`` of both draws the same random numbers,
so until the agent's first order the two paths are the same order for order, and afterwards the
difference of their mids is the agent's impact rather than the market's noise. Per rollout, on a
grid of ``grid_ns``:

    impact(t) = side * (mid_with(t) - mid_without(t)) / arrival mid

in basis points and in units of sigma_T, the rollouts' own volatility over the execution's
duration T (the baseline rollouts' mid returns over one minute, scaled by sqrt(T)). Reported
per run: the mean path with its 10-90% band over rollouts, the peak of the mean during the
execution and its time (and the path's maximum), the impact at the end of execution and at the
end of ``after``, the fill rate, the implementation shortfall of the fills against the arrival
mid, and a power-law decay fit after completion (``fit.fit_decay``). A size sweep adds the fit of I(T) / sigma_T = Y (Q / V_T)^delta,
V_T being the instrument's mean traded volume over a span of T's length in the training hours
(so ``--pct P`` is Q = P% of V_T), with bootstrap intervals from resampled rollout pairs; Y is
also given on the daily convention (sigma and V of the whole day, sigma_day = the rollouts'
one-minute volatility times sqrt(390)), which equals the other when delta = 1/2.

Volumes are the visible executions of the feed (LOBSTER types 4): the order model generates the
visible market, and the hidden executions (type 5) are reported beside them, not counted.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.agents import AgentFactory, MarketOrder, Pov, Twap
from simulator.dayforks import DayForks
from simulator.engine import Engine, ForkRequest, Futures, Sampler, fork_in_processes
from simulator.lobster import LobsterDay
from simulator.rollout import RolloutResult
from simulator.units import NS_PER_MIN, NS_PER_S, clock
from surveillance.impact.fit import (
    FitError,
    fit_decay,
    fit_power_law,
    percentile_interval,
)

TRAINING_END_NS = (14 * 60 + 30) * NS_PER_MIN  # the bundled order model trained up to 14:30
TRADING_DAY_MIN = 390  # minutes of a NASDAQ session, for the daily convention
STRATEGIES = ("twap", "pov", "market")
BPS = 1e4
# What the literature finds for Y in I = Y sigma sqrt(Q/V) with daily sigma and V (Toth et al.
# 2011; Bouchaud, Bonart, Donier and Gould 2018, ch. 12): of order one, mostly 0.5 to 1.
LITERATURE_Y = (0.5, 1.0)
DELTA_GOAL = (0.4, 0.7)


class ImpactError(ValueError):
    """An impact run that cannot be set up on this data (user error)."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """How the metaorder is executed, whatever its size. ``levels``: the price levels of the
    other side an aggressive order may reach (None: every level shown but the deepest, which no
    agent takes, ``simulator.agents.take_price``); ``passive``: the share
    of each TWAP slice resting at the near touch; ``slice_ns``: a TWAP slice's length (the
    paper's 30 s); ``interval_ns``: how often a POV looks at the market."""

    kind: str = "twap"
    passive: float = 0.8
    levels: int | None = 5
    slice_ns: int = 30 * NS_PER_S
    interval_ns: int = 5 * NS_PER_S

    def __post_init__(self) -> None:
        if self.kind not in STRATEGIES:
            raise ImpactError(f"unknown strategy {self.kind!r}; choose from {STRATEGIES}")
        if not 0.0 <= self.passive < 1.0:
            raise ImpactError(f"the passive share must lie in [0, 1), got {self.passive}")
        if self.levels is not None and self.levels <= 0:
            raise ImpactError(f"levels must be positive, got {self.levels}")

    @property
    def name(self) -> str:
        lv = "all" if self.levels is None else str(self.levels)
        if self.kind == "twap":
            return f"twap L{lv}-P{self.passive:g}"
        if self.kind == "pov":
            return f"pov L{lv}"
        return f"market L{lv}"

    def end_ns(self, start_ns: int, duration_ns: int) -> int:
        """When execution is over: the order itself for the market strategy."""
        return start_ns if self.kind == "market" else start_ns + duration_ns

    def agent(
        self,
        side: int,
        qty: int,
        start_ns: int,
        duration_ns: int,
        tick_size: int,
        expected_volume: float,
    ) -> AgentFactory:
        """The agent factory of a ``qty``-share metaorder. A POV trades at the rate that
        finishes ``qty`` in ``duration_ns`` when the market trades ``expected_volume`` shares
        over that time."""
        end = start_ns + duration_ns
        if self.kind == "twap":
            slices = max(1, duration_ns // self.slice_ns)
            return Twap(side, qty, start_ns, end, slices, self.levels or 1_000, tick_size,
                        self.passive)  # fmt: skip
        if self.kind == "pov":
            rate = qty / (max(expected_volume, 1.0) + qty)
            return Pov(side, qty, start_ns, end, rate, self.interval_ns, self.levels or 1_000)
        return MarketOrder(side, qty, start_ns, self.levels)


# The aggressiveness ladder run by ``compare``: most passive first (the paper's L1/L5 x P0.9/P0.1
# TWAPs, App. K, with an all-aggressive TWAP and the immediate order added at the top).
LADDER = (
    Strategy("twap", passive=0.8, levels=1),
    Strategy("twap", passive=0.8, levels=5),
    Strategy("twap", passive=0.0, levels=5),
    Strategy("market", levels=None),
)


@dataclass(frozen=True, slots=True)
class VolumeScale:
    """The instrument's traded volume measured from the recorded day (visible executions)."""

    duration_ns: int
    per_duration: float  # V_T: mean shares per span of duration_ns in the training hours
    day: float  # the whole recorded day
    hidden_day: float  # hidden executions of the day (not simulated, not counted)
    training_from: str
    training_to: str

    @classmethod
    def of(cls, day: LobsterDay, duration_ns: int, until_ns: int = TRAINING_END_NS) -> VolumeScale:
        m = day.messages
        t0 = int(m.ts_ns[0])
        t1 = min(until_ns, int(m.ts_ns[-1]))
        if t1 <= t0:
            raise ImpactError("the data hold no training hours to measure the volume on")
        visible = m.kind == 4
        train = visible & (m.ts_ns < t1)
        per = float(m.qty[train].sum()) * duration_ns / (t1 - t0)
        return cls(
            duration_ns,
            per,
            float(m.qty[visible].sum()),
            float(m.qty[m.kind == 5].sum()),
            clock(t0),
            clock(t1),
        )

    def shares(self, pct: float) -> int:
        """``pct`` percent of V_T, in whole shares."""
        return round(pct / 100.0 * self.per_duration)

    def as_dict(self) -> dict[str, object]:
        return {
            "definition": "visible executed shares (LOBSTER type 4); V_T = their mean over spans "
            "of the execution's duration in the training hours",
            "duration_s": self.duration_ns / NS_PER_S,
            "per_duration": round(self.per_duration, 1),
            "day": self.day,
            "hidden_day": self.hidden_day,
            "training_hours": [self.training_from, self.training_to],
        }


def real_minute_volatility(day: LobsterDay, until_ns: int = TRAINING_END_NS) -> float | None:
    """The recorded day's volatility of one-minute log mid returns over the training hours
    (the book rows' mid at each minute), beside the rollouts' own."""
    rows = day.orderbook
    if rows is None:
        return None
    ts = day.messages.ts_ns
    grid = np.arange(int(ts[0]), min(until_ns, int(ts[-1])), NS_PER_MIN)
    k = np.searchsorted(ts, grid, side="right") - 1
    ok = k >= 0
    mid = (rows[k[ok], 0].astype(float) + rows[k[ok], 2]) / 2.0
    r = np.diff(np.log(mid))
    r = r[np.isfinite(r)]
    return float(np.sqrt(np.mean(r**2))) if len(r) else None


def mid_on_grid(r: RolloutResult, grid_ns: np.ndarray) -> np.ndarray:
    """A rollout's mid after the last event at or before each grid time (the fork's mid before
    its first event); a one-sided book keeps the last two-sided mid."""
    mid0 = (r.bid0 + r.ask0) / 2.0
    mid = r.mid
    if len(mid) == 0:
        return np.full(len(grid_ns), mid0)
    valid = np.isfinite(mid)
    last = np.maximum.accumulate(np.where(valid, np.arange(len(mid)), -1))
    filled = np.where(last >= 0, mid[np.maximum(last, 0)], mid0)
    k = np.searchsorted(r.ts_ns, grid_ns, side="right") - 1
    return np.where(k >= 0, filled[np.maximum(k, 0)], mid0)


@dataclass(frozen=True, slots=True)
class Volatility:
    """The baseline rollouts' volatility (log mid returns over ``lag_s``), per sqrt(second)."""

    per_sqrt_s: float
    lag_s: float
    per_rollout_sq: np.ndarray = field(repr=False)  # each rollout's sum of squared returns
    per_rollout_n: np.ndarray = field(repr=False)

    @classmethod
    def of(cls, mids: np.ndarray, grid_s: float, lag_s: float = 60.0) -> Volatility:
        horizon_s = grid_s * (mids.shape[1] - 1)
        step = max(1, round(min(lag_s, horizon_s / 4) / grid_s))
        sampled = np.log(mids[:, ::step])
        r = np.diff(sampled, axis=1)
        sq = (r**2).sum(axis=1)
        n = np.full(len(mids), r.shape[1], float)
        return cls(cls._per(sq, n, step * grid_s), step * grid_s, sq, n)

    @staticmethod
    def _per(sq: np.ndarray, n: np.ndarray, lag_s: float) -> float:
        return float(np.sqrt(sq.sum() / max(n.sum(), 1.0) / lag_s))

    def resampled(self, idx: np.ndarray) -> float:
        return self._per(self.per_rollout_sq[idx], self.per_rollout_n[idx], self.lag_s)

    def over(self, seconds: float) -> float:
        return self.per_sqrt_s * np.sqrt(seconds)


@dataclass(slots=True)
class ImpactRun:
    """One metaorder on every rollout, paired with the baseline."""

    strategy: Strategy
    qty: int
    pct: float | None  # of V_T
    exec_end_s: float  # seconds after the start when execution is over
    t_s: np.ndarray  # grid, seconds after the start
    impact: np.ndarray  # (rollouts, grid) fraction of the arrival mid, signed by the side
    filled: np.ndarray  # shares per rollout
    vwap: np.ndarray  # mean fill price per rollout (NaN: nothing filled)
    shortfall_bps: np.ndarray  # per rollout, of the filled shares against the arrival mid
    diverged_at_s: float | None  # first grid time where any pair differs
    decay_draws: int = 200  # bootstrap draws of the decay exponent's interval

    @property
    def end_index(self) -> int:
        return int(np.searchsorted(self.t_s, self.exec_end_s, side="left"))

    def end_impact(self, idx: np.ndarray | None = None) -> float:
        col = self.impact[:, self.end_index]
        return float(col.mean() if idx is None else col[idx].mean())

    def summary(self, sigma_t: float) -> dict[str, object]:
        bps = self.impact * BPS
        mean = bps.mean(axis=0)
        q10, q90 = np.quantile(bps, [0.1, 0.9], axis=0)
        n = len(bps)
        k_end = self.end_index
        # the peak is the execution's (up to its end): what the impact decays from afterwards
        k_peak = int(np.argmax(mean[: k_end + 1]))
        k_max = int(np.argmax(mean))
        peak, end, final = float(mean[k_peak]), float(mean[k_end]), float(mean[-1])
        se_end = float(bps[:, k_end].std(ddof=1) / np.sqrt(n)) if n > 1 else None
        fill = self.filled / self.qty
        ok = np.isfinite(self.shortfall_bps)
        isf = self.shortfall_bps[ok]
        out: dict[str, object] = {
            "strategy": self.strategy.name,
            "qty": self.qty,
            "pct": self.pct,
            "exec_end_s": self.exec_end_s,
            "peak_bps": round(peak, 3),
            "peak_t_s": float(self.t_s[k_peak]),
            "max_bps": round(float(mean[k_max]), 3),
            "max_t_s": float(self.t_s[k_max]),
            "end_bps": round(end, 3),
            "end_bps_se": None if se_end is None else round(se_end, 3),
            "end_sigma": round(end / BPS / sigma_t, 4) if sigma_t > 0 else None,
            "peak_sigma": round(peak / BPS / sigma_t, 4) if sigma_t > 0 else None,
            "final_bps": round(final, 3),
            "final_over_peak": round(final / peak, 3) if peak > 0 else None,
            "decays_between_zero_and_peak": bool(0.0 <= final <= peak) and peak > 0,
            "fill_rate": round(float(fill.mean()), 4),
            "fill_rate_min": round(float(fill.min()), 4),
            "shortfall_bps": round(float(isf.mean()), 3) if len(isf) else None,
            "shortfall_bps_se": round(float(isf.std(ddof=1) / np.sqrt(len(isf))), 3)
            if len(isf) > 1
            else None,
            "shortfall_bps_band": [round(float(x), 3) for x in np.quantile(isf, [0.1, 0.9])]
            if len(isf)
            else None,
            "diverged_at_s": self.diverged_at_s,
            "decay": self.decay(self.decay_draws),
            "path": {
                "t_s": [float(x) for x in self.t_s],
                "mean_bps": _rounded(mean),
                "q10_bps": _rounded(q10),
                "q90_bps": _rounded(q90),
                "mean_sigma": _rounded(mean / BPS / sigma_t, 4) if sigma_t > 0 else None,
                "q10_sigma": _rounded(q10 / BPS / sigma_t, 4) if sigma_t > 0 else None,
                "q90_sigma": _rounded(q90 / BPS / sigma_t, 4) if sigma_t > 0 else None,
            },
        }
        return out

    def decay(self, draws: int = 200, seed: int = 0) -> dict[str, object] | None:
        """The power-law decay fit of the mean path from the end of execution on, with a
        bootstrap interval of its exponent."""
        k = self.end_index
        s = self.t_s[k:] - self.t_s[k]
        if len(s) < 4:
            return None
        bps = self.impact[:, k:] * BPS
        try:
            d = fit_decay(s, bps.mean(axis=0))
        except FitError as exc:
            return {"error": str(exc)}
        rng = np.random.default_rng(seed)
        expo = np.full(draws, np.nan)
        for b in range(draws):
            idx = rng.integers(len(bps), size=len(bps))
            with contextlib.suppress(FitError):
                expo[b] = fit_decay(s, bps[idx].mean(axis=0)).exponent
        ci = percentile_interval(expo)
        return {
            "form": "I(s) = A (1 + s / tau)^-beta, s seconds after the end of execution",
            "exponent": round(d.exponent, 3),
            "exponent_ci95": None if ci is None else [round(ci[0], 3), round(ci[1], 3)],
            "tau_s": round(d.tau_s, 1),
            "amplitude_bps": round(d.amplitude, 3),
        }


def _rounded(a: np.ndarray, digits: int = 3) -> list[float]:
    return [round(float(x), digits) for x in a]


@dataclass(slots=True)
class SizeLaw:
    """I(T) / sigma_T = Y (Q / V_T)^delta over the sweep, with bootstrap intervals."""

    x: np.ndarray  # Q / V_T per size
    y: np.ndarray  # mean end impact / sigma_T per size
    y_se: np.ndarray
    scale: float  # Y
    exponent: float  # delta
    scale_ci: tuple[float, float] | None
    exponent_ci: tuple[float, float] | None
    scale_day: float  # Y on the daily convention
    scale_day_ci: tuple[float, float] | None
    draws: int

    def as_dict(self) -> dict[str, object]:
        lo, hi = DELTA_GOAL
        ci = self.exponent_ci
        means = self.y
        return {
            "form": "I(T)/sigma_T = Y (Q/V_T)^delta; I(T): mean paired impact at the end of "
            "execution; sigma_T: the baseline rollouts' volatility over T; V_T: mean visible "
            "volume over T in the training hours",
            "x": _rounded(self.x, 5),
            "y": _rounded(self.y, 4),
            "y_se": _rounded(self.y_se, 4),
            "delta": round(self.exponent, 3),
            "delta_ci95": None if ci is None else [round(ci[0], 3), round(ci[1], 3)],
            "Y": round(self.scale, 3),
            "Y_ci95": None
            if self.scale_ci is None
            else [round(self.scale_ci[0], 3), round(self.scale_ci[1], 3)],
            "Y_daily": round(self.scale_day, 3),
            "Y_daily_ci95": None
            if self.scale_day_ci is None
            else [round(self.scale_day_ci[0], 3), round(self.scale_day_ci[1], 3)],
            "Y_literature": list(LITERATURE_Y),
            "bootstrap_draws": self.draws,
            "goals": {
                "delta_in_0.4_0.7": bool(lo <= self.exponent <= hi),
                "delta_ci_excludes_0_and_1": None if ci is None else bool(ci[0] > 0 and ci[1] < 1),
                "impact_rises_with_size": bool(np.all(np.diff(means) > 0)),
            },
        }


def size_law(
    runs: Sequence[ImpactRun],
    vol: Volatility,
    duration_s: float,
    volume: VolumeScale,
    draws: int = 1000,
    seed: int = 0,
) -> SizeLaw:
    """Fit the size law over runs of one strategy at several sizes (same rollouts, so the
    bootstrap resamples rollout indices jointly across sizes and the baseline's volatility)."""
    runs = sorted(runs, key=lambda r: r.qty)
    sigma_t = vol.over(duration_s)
    if not sigma_t > 0:
        raise FitError("the baseline rollouts did not move: no volatility to scale by")
    x = np.array([r.qty / volume.per_duration for r in runs])
    ends = np.stack([r.impact[:, r.end_index] for r in runs])  # (sizes, rollouts)
    n = ends.shape[1]
    y = ends.mean(axis=1) / sigma_t
    y_se = ends.std(axis=1, ddof=1) / np.sqrt(n) / sigma_t if n > 1 else np.zeros(len(runs))
    law = fit_power_law(x, y, y_se if n > 1 else None)
    # daily convention: Y_day sigma_day (Q/V_day)^delta = Y sigma_T (Q/V_T)^delta
    day_s = TRADING_DAY_MIN * 60.0

    def to_day(scale: float, expo: float, per_sqrt_s: float) -> float:
        s_t = per_sqrt_s * np.sqrt(duration_s)
        s_d = per_sqrt_s * np.sqrt(day_s)
        return scale * s_t / s_d * (volume.day / volume.per_duration) ** expo

    rng = np.random.default_rng(seed)
    sc, ex, sd = (np.full(draws, np.nan) for _ in range(3))
    for b in range(draws):
        idx = rng.integers(n, size=n)
        sig = vol.resampled(idx) * np.sqrt(duration_s)
        yb = ends[:, idx].mean(axis=1) / sig
        eb = ends[:, idx].std(axis=1, ddof=1) / np.sqrt(n) / sig if n > 1 else None
        try:
            lb = fit_power_law(x, yb, eb)
        except FitError:
            continue
        sc[b], ex[b] = lb.scale, lb.exponent
        sd[b] = to_day(lb.scale, lb.exponent, vol.resampled(idx))
    return SizeLaw(
        x=x,
        y=y,
        y_se=y_se,
        scale=law.scale,
        exponent=law.exponent,
        scale_ci=percentile_interval(sc),
        exponent_ci=percentile_interval(ex),
        scale_day=to_day(law.scale, law.exponent, vol.per_sqrt_s),
        scale_day_ci=percentile_interval(sd),
        draws=draws,
    )


def pooled_size_law(laws: Sequence[dict], draws: int = 2000, seed: int = 0) -> dict[str, object]:
    """One size law through the sweeps of several instruments (``SizeLaw.as_dict()`` each), in
    units of each one's own sigma_T and V_T. The interval is a parametric bootstrap from each
    point's standard error, drawn independently: it leaves out that one instrument's sizes share
    their baseline rollouts, so it is somewhat narrower than a resampling of the rollouts."""
    x = np.concatenate([np.asarray(law["x"], float) for law in laws])
    y = np.concatenate([np.asarray(law["y"], float) for law in laws])
    se = np.concatenate([np.asarray(law["y_se"], float) for law in laws])
    law = fit_power_law(x, y, se)
    rng = np.random.default_rng(seed)
    sc, ex = np.full(draws, np.nan), np.full(draws, np.nan)
    for b in range(draws):
        with contextlib.suppress(FitError):
            fit = fit_power_law(x, y + rng.normal(0.0, se), se)
            sc[b], ex[b] = fit.scale, fit.exponent
    ci, yci = percentile_interval(ex), percentile_interval(sc)
    return {
        "points": len(x),
        "delta": round(law.exponent, 3),
        "delta_ci95": None if ci is None else [round(ci[0], 3), round(ci[1], 3)],
        "Y": round(law.scale, 3),
        "Y_ci95": None if yci is None else [round(yci[0], 3), round(yci[1], 3)],
    }


def paired_run(
    base: Futures,
    futures: Futures,
    strategy: Strategy,
    qty: int,
    pct: float | None,
    side: int,
    grid_ns: np.ndarray,
    base_mids: np.ndarray,
) -> ImpactRun:
    """The impact of one metaorder: each rollout against its baseline twin."""
    req = futures.request
    arrival = (base.results[0].bid0 + base.results[0].ask0) / 2.0
    mids = np.stack([mid_on_grid(r, grid_ns) for r in futures.results])
    impact = side * (mids - base_mids) / arrival
    filled = np.zeros(len(mids))
    notional = np.zeros(len(mids))
    for i, fills in enumerate(futures.agent_fills):
        for f in fills:
            filled[i] += f.qty
            notional[i] += f.qty * f.price
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(filled > 0, notional / np.maximum(filled, 1), np.nan)
        shortfall = side * (vwap - arrival) / arrival * BPS
    differs = np.flatnonzero((mids != base_mids).any(axis=0))
    t_s = (grid_ns - req.start_ns) / NS_PER_S
    duration_ns = round(_exec_duration(strategy, req) * NS_PER_S)
    end_s = (strategy.end_ns(req.start_ns, duration_ns) - req.start_ns) / NS_PER_S
    return ImpactRun(
        strategy=strategy,
        qty=qty,
        pct=pct,
        exec_end_s=end_s,
        t_s=t_s,
        impact=impact,
        filled=filled,
        vwap=vwap,
        shortfall_bps=shortfall,
        diverged_at_s=float(t_s[differs[0]]) if len(differs) else None,
    )


def _exec_duration(strategy: Strategy, req: ForkRequest) -> float:
    """The execution's duration in seconds, read back from the request's agent."""
    agent = req.agents[0]
    if isinstance(agent, Twap | Pov):
        return (agent.end_ns - agent.start_ns) / NS_PER_S
    return 0.0


@dataclass(slots=True)
class ImpactReport:
    """Everything ``surveillance impact`` reports (``as_dict`` is its JSON)."""

    instrument: str
    generator: str
    start: str
    side: int
    duration_s: float
    after_s: float
    rollouts: int
    seed: int
    held_out: bool
    arrival_mid: float
    volume: VolumeScale
    volatility: Volatility
    real_sigma_minute: float | None  # the recorded day's, training hours
    runs: list[ImpactRun]  # the chosen strategy, one per size
    ladder: list[ImpactRun]  # the aggressiveness comparison (``compare``)
    law: SizeLaw | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    # how the generator read the metaorder's orders: "as orders" of its context (the order
    # model, docs/decisions/agent-orders-in-context.md) or "through the book" only
    agent_orders: str = "through the book"

    @property
    def sigma_t(self) -> float:
        return self.volatility.over(self.duration_s)

    def as_dict(self) -> dict[str, object]:
        sigma_t = self.sigma_t
        ladder = [r.summary(sigma_t) for r in self.ladder]
        peaks = [r["peak_bps"] for r in ladder]
        return {
            "instrument": self.instrument,
            "generator": self.generator,
            "agent_orders": self.agent_orders,
            "start": self.start,
            "side": "buy" if self.side > 0 else "sell",
            "duration_s": self.duration_s,
            "after_s": self.after_s,
            "rollouts": self.rollouts,
            "seed": self.seed,
            "held_out": self.held_out,
            "arrival_mid": self.arrival_mid,
            "volume": self.volume.as_dict(),
            "volatility": {
                "source": "baseline rollouts: log mid returns over lag_s",
                "lag_s": self.volatility.lag_s,
                "per_minute_bps": round(float(self.volatility.over(60.0)) * BPS, 3),
                "sigma_T_bps": round(float(sigma_t) * BPS, 3),
                "daily_bps": round(float(self.volatility.over(TRADING_DAY_MIN * 60.0)) * BPS, 2),
                "real_per_minute_bps": None
                if self.real_sigma_minute is None
                else round(self.real_sigma_minute * BPS, 3),
            },
            "runs": [r.summary(sigma_t) for r in self.runs],
            "size_law": None if self.law is None else self.law.as_dict(),
            "aggressiveness": None
            if not ladder
            else {
                "order": [r.strategy.name for r in self.ladder],
                "runs": ladder,
                "peak_rises": bool(all(b >= a for a, b in itertools.pairwise(peaks))),
            },
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }


def impact_of_request(
    base: ForkRequest,
    sampler_factory: Callable[[], Sampler],
    *,
    side: int,
    sizes: Sequence[tuple[int, float | None]],
    strategy: Strategy,
    duration_ns: int,
    volume: VolumeScale,
    compare: bool = False,
    jobs: int = 1,
    engine: Engine | None = None,
    grid_ns: int = 5 * NS_PER_S,
    draws: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[ImpactRun], list[ImpactRun], Volatility, SizeLaw | None]:
    """Paired forks of ``base`` (a request without agents): one baseline, one request per
    ``(qty, pct)`` of ``sizes`` with ``strategy``, and with ``compare`` the aggressiveness
    ladder (``LADDER``) at the largest size. Returns the sweep's runs, the ladder's, the
    baseline's volatility and, with two or more sizes, the size law."""
    if side not in (1, -1):
        raise ImpactError(f"side must be 1 (buy) or -1 (sell), got {side}")
    if not sizes:
        raise ImpactError("no size to run")
    if base.agents:
        raise ImpactError("the baseline request must carry no agent")
    if duration_ns <= 0 or duration_ns > base.horizon_ns:
        raise ImpactError("the execution must last a positive time inside the horizon")
    for qty, _ in sizes:
        if qty <= 0:
            raise ImpactError(f"a metaorder of {qty} shares: sizes must be at least one share")
    tick = base.tick_size
    start = base.start_ns

    def with_agent(s: Strategy, qty: int) -> ForkRequest:
        agent = s.agent(side, qty, start, duration_ns, tick, volume.per_duration)
        return replace(base, agents=(agent,))

    plan: list[tuple[Strategy, int, float | None, bool]] = [
        (strategy, q, p, False) for q, p in sizes
    ]
    ladder_plan: list[tuple[Strategy, int, float | None]] = []
    if compare:  # at the largest size, where the strategies differ most
        q0, p0 = max(sizes, key=lambda qp: qp[0])
        ladder_plan = [(s, q0, p0) for s in LADDER]
        # a rung that is the sweep's own strategy at that size is that run, not forked again
        plan += [(s, q, p, True) for s, q, p in ladder_plan if s != strategy]
    requests = [base] + [with_agent(s, q) for s, q, _, _ in plan]
    t0 = time.perf_counter()
    futures: list[Futures] = []
    for k, f in enumerate(fork_in_processes(requests, sampler_factory, jobs, engine)):
        futures.append(f)
        if progress is not None:
            what = "baseline" if k == 0 else f"{plan[k - 1][0].name} {plan[k - 1][1]} shares"
            progress(f"forked {what}: {f.seconds:.0f} s ({time.perf_counter() - t0:.0f} s)")
    grid = np.arange(start, base.end_ns + 1, grid_ns, dtype=np.int64)
    base_mids = np.stack([mid_on_grid(r, grid) for r in futures[0].results])
    vol = Volatility.of(base_mids, grid_ns / NS_PER_S)
    runs: list[ImpactRun] = []
    forked: dict[tuple[Strategy, int], ImpactRun] = {}
    for (s, q, p, in_ladder), f in zip(plan, futures[1:], strict=True):
        run = paired_run(futures[0], f, s, q, p, side, grid, base_mids)
        run.decay_draws = min(draws, 200)
        forked[s, q] = run
        if not in_ladder:
            runs.append(run)
    ladder = [forked[s, q] for s, q, _ in ladder_plan]
    law = None
    if len({r.qty for r in runs}) >= 2:
        try:
            law = size_law(runs, vol, duration_ns / NS_PER_S, volume, draws=draws)
        except FitError:
            law = None
    return runs, ladder, vol, law


def measure_impact(
    day: LobsterDay,
    sampler_factory: Callable[[], Sampler],
    *,
    start_ns: int,
    side: int,
    strategy: Strategy | None = None,
    sizes: Sequence[int] = (),
    pcts: Sequence[float] = (),
    duration_ns: int = 5 * NS_PER_MIN,
    after_ns: int = 15 * NS_PER_MIN,
    rollouts: int = 32,
    seed: int = 0,
    jobs: int = 1,
    compare: bool = False,
    refill: bool = True,
    generator_name: str = "",
    engine: Engine | None = None,
    forks: DayForks | None = None,
    draws: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> ImpactReport:
    """The impact of a metaorder of ``sizes`` shares or ``pcts`` percent of V_T (one or the
    other) sent at ``start_ns`` of a recorded day, executed over ``duration_ns`` and watched
    for ``after_ns`` more (module docstring). ``refill``: rollout books are kept at the feed's
    depth from the forked book's own depth (``ForkRequest.refill``), so that a large order
    meets the liquidity a level-N feed does not show rather than an empty side."""
    t0 = time.perf_counter()
    strategy = strategy or Strategy()
    if bool(sizes) == bool(pcts):
        raise ImpactError("give the metaorder's size in shares or in percent of volume, not both")
    if rollouts < 1:
        raise ImpactError("need at least one rollout")
    volume = VolumeScale.of(day, duration_ns)
    if pcts:
        if any(p <= 0 for p in pcts):
            raise ImpactError("percentages of volume must be positive")
        plan = [(volume.shares(p), float(p)) for p in pcts]
        tiny = [p for (q, p) in plan if q < 1]
        if tiny:
            raise ImpactError(
                f"{tiny[0]:g}% of {volume.per_duration:.0f} shares is less than one share"
            )
    else:
        plan = [(int(q), round(100.0 * q / volume.per_duration, 4)) for q in sizes]
    forks = forks or DayForks(day)
    try:
        base = forks.request(start_ns, duration_ns + after_ns, rollouts, seed, refill=refill)
    except ValueError as exc:
        raise ImpactError(str(exc)) from None
    runs, ladder, vol, law = impact_of_request(
        base,
        sampler_factory,
        side=side,
        sizes=plan,
        strategy=strategy,
        duration_ns=duration_ns,
        volume=volume,
        compare=compare,
        jobs=jobs,
        engine=engine,
        draws=draws,
        progress=progress,
    )
    notes = []
    held_out = start_ns >= TRAINING_END_NS
    if not held_out:
        notes.append(f"starts before {clock(TRAINING_END_NS)}: hours the order model trained on")
    book = base.book
    reads = getattr(sampler_factory, "kind", "") == "lmm" and getattr(
        sampler_factory, "see_agents", False
    )
    return ImpactReport(
        instrument=day.symbol,
        generator=generator_name,
        agent_orders="as orders" if reads else "through the book",
        start=clock(start_ns),
        side=side,
        duration_s=duration_ns / NS_PER_S,
        after_s=after_ns / NS_PER_S,
        rollouts=rollouts,
        seed=seed,
        held_out=held_out,
        arrival_mid=float(book.mid) if book.mid is not None else float("nan"),
        volume=volume,
        volatility=vol,
        real_sigma_minute=real_minute_volatility(day),
        runs=runs,
        ladder=ladder,
        law=law,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )
