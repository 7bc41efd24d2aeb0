"""A gymnasium environment: execute a parent order within a horizon on forks of a real book.

An episode buys (or sells) ``qty`` shares over ``horizon`` from a start time of the market
(``surveillance.execution.market``). Each ``step`` is one decision interval (30 s by default,
as the paper's TWAP): the engine forks the current book once (``Engine.fork_one``, one
rollout) with the interval's execution agent inside (``surveillance.execution.agent``) and
keeps the rollout's final book, which the next step forks again, with the model's context
extended by the orders just generated. Every step's fork is seeded by the engine's seed rule
(``window_seed``) from the episode seed and the step's time, so ``reset(seed=s)`` and the same
actions give the same episode.

Actions (``Discrete``): the paper's configurable TWAP grid (App. H), passive volume ratio x
aggressive price level, for one interval, plus one more action that takes everything left at
once (``SWEEP``, the immediate order). Observation (``Box``, 6 values): time left, quantity
left, spread, level 1-3 imbalance and the last interval's return (both signed so that positive
is the price moving against the order), and the move of the mid since arrival (signed alike).

Reward: minus the implementation shortfall, in basis points of the arrival mid per share of
the parent order, of each interval's fills; at the horizon, what is left unfilled is charged
at the opposite touch then plus ``penalty_bps``. The episode's return is thus minus the
shortfall of the whole order. ``terminated``: the order is filled; ``truncated``: the horizon
came first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simulator.book import OrderBook
from simulator.engine import Engine, ForkRequest, Sampler, window_seed
from simulator.units import NS_PER_MIN, NS_PER_S
from surveillance.execution.agent import IntervalPlan
from surveillance.execution.market import ExecutionError, Market, extend_context

ENV_ID = "surveillance/Execution-v0"
FEATURES = ("time_left", "qty_left", "spread", "imbalance", "last_return", "drift")
PVR = (0.0, 0.25, 0.5, 0.75, 1.0)  # passive volume ratio (the paper: 0, 0.1, ..., 1)
LEVELS = (0, 1, 2, 3)  # aggressive price: none, the touch, one tick and two ticks beyond it


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """The parent order and the environment's decision grid."""

    side: int = 1  # 1 buy, -1 sell
    qty: int = 1000
    horizon_ns: int = 5 * NS_PER_MIN
    interval_ns: int = 30 * NS_PER_S
    passive_ns: int = 25 * NS_PER_S  # the passive period of each interval
    pvr: tuple[float, ...] = PVR
    levels: tuple[int, ...] = LEVELS
    penalty_bps: float = 10.0  # per unfilled share, beyond the opposite touch at the horizon
    refill: bool = True  # rollout books kept at the feed's depth (``simulator.rollout``)
    context_ns: int = 30 * NS_PER_MIN  # the model's context kept in time
    grid: tuple[tuple[float, int], ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ExecutionError(f"side must be 1 (buy) or -1 (sell), got {self.side}")
        if self.qty <= 0:
            raise ExecutionError(f"the parent order needs a positive quantity, got {self.qty}")
        if self.interval_ns <= 0 or self.horizon_ns % self.interval_ns:
            raise ExecutionError("the horizon must be a whole number of decision intervals")
        if not 0 < self.passive_ns < self.interval_ns:
            raise ExecutionError("the passive period must lie inside the decision interval")
        if not self.pvr or not self.levels or min(self.levels) < 0:
            raise ExecutionError("the action grid needs passive ratios and levels >= 0")
        object.__setattr__(self, "grid", tuple((p, lv) for p in self.pvr for lv in self.levels))

    @property
    def steps(self) -> int:
        return self.horizon_ns // self.interval_ns

    @property
    def sweep(self) -> int:
        """The action that takes everything left at once (the immediate order)."""
        return len(self.grid)

    @property
    def actions(self) -> int:
        return len(self.grid) + 1

    def action_name(self, action: int) -> str:
        if action == self.sweep:
            return "immediate"
        p, lv = self.grid[action]
        return f"twap-p{p:g}-l{lv}"


@dataclass(slots=True)
class EpisodeState:
    """What an episode has done so far (``info`` reads it)."""

    start_ns: int
    seed: int
    arrival_mid: float
    book: OrderBook
    context: Any
    rows: np.ndarray | None
    now_ns: int
    step: int = 0
    filled: int = 0
    cost: float = 0.0  # sum of side * (fill price - arrival mid) * shares, price units
    last_mid: float = 0.0
    penalty_bps: float = 0.0
    actions: list[int] = field(default_factory=list)
    fills: list[tuple[int, int, int]] = field(default_factory=list)  # (ts, price, qty)


class ExecutionEnv(gym.Env):
    """Execute a parent order on forks of ``market`` driven by ``sampler`` (module docstring).

    ``reset(seed=s, options={"start_ns": t})`` starts at ``t`` (one of ``market.starts_ns``);
    without it the start is drawn from the market's start times.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it on the class)

    def __init__(self, market: Market, sampler: Sampler, config: ExecutionConfig | None = None):
        super().__init__()
        self.market = market
        self.engine = Engine(sampler)
        self.config = config or ExecutionConfig()
        self.action_space = spaces.Discrete(self.config.actions)
        low = np.array([0, 0, 0, -1, -1, -1], np.float32)
        high = np.ones(6, np.float32)
        self.observation_space: spaces.Box = spaces.Box(low, high, dtype=np.float32)
        self.state: EpisodeState | None = None
        self._template: ForkRequest | None = None  # the episode's fork request, reset's

    # -- gymnasium API ---------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        starts = self.market.starts_ns
        start = (options or {}).get("start_ns")
        if start is None:
            start = starts[int(self.np_random.integers(len(starts)))]
        episode_seed = int(self.np_random.integers(2**62))
        req = self.market.request(int(start))
        mid = _mid(req.book)
        if mid is None:
            raise ExecutionError(f"the book at {start} ns is one-sided: no arrival mid")
        self.state = EpisodeState(
            start_ns=int(start),
            seed=episode_seed,
            arrival_mid=mid,
            book=req.book,
            context=req.context,
            rows=req.context_rows,
            now_ns=int(start),
            last_mid=mid,
        )
        self._template = req
        return self._observation(mid), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        st = self.state
        if st is None or self._template is None:
            raise ExecutionError("step before reset")
        cfg = self.config
        a = int(action)
        if not self.action_space.contains(a):
            raise ExecutionError(f"action {action!r} outside 0..{cfg.actions - 1}")
        left = cfg.qty - st.filled
        steps_left = cfg.steps - st.step
        # The schedule: what must be filled by this interval's end to stay on a straight line.
        due_after = cfg.qty * (steps_left - 1) // cfg.steps
        need = left if a == cfg.sweep else max(left - due_after, 0)
        if a == cfg.sweep:
            plan = IntervalPlan(
                cfg.side, st.now_ns, st.now_ns + cfg.passive_ns, need, 0, 0, True,
                self.market.tick_size,
            )  # fmt: skip
        else:
            pvr, levels = cfg.grid[a]
            plan = IntervalPlan(
                cfg.side, st.now_ns, st.now_ns + cfg.passive_ns, need,
                math.ceil(pvr * need), levels, False, self.market.tick_size,
            )  # fmt: skip
        request = replace(
            self._template,
            book=st.book,
            context=st.context,
            context_rows=st.rows,
            start_ns=st.now_ns,
            horizon_ns=cfg.interval_ns,
            rollouts=1,
            seed=window_seed(st.seed, self.market.instrument, st.now_ns),
            agents=(plan,),
            keep_books=True,
            refill=cfg.refill and self._template.max_depth is not None,
        )
        result = self.engine.fork_one(request).results[0]
        step_cost = 0.0
        for f in result.agent_fills:
            shares = min(f.qty, cfg.qty - st.filled)  # never beyond the parent order
            st.filled += shares
            step_cost += cfg.side * (f.price - st.arrival_mid) * shares
            st.fills.append((f.ts_ns, f.price, shares))
        st.cost += step_cost
        assert result.book is not None  # keep_books
        st.book = result.book
        st.now_ns += cfg.interval_ns
        st.step += 1
        st.actions.append(a)
        st.context, st.rows = extend_context(
            st.context, st.rows, result, st.now_ns - cfg.context_ns
        )
        mid = _mid(st.book)
        mid = st.last_mid if mid is None else mid
        reward = -self._bps(step_cost)
        terminated = st.filled >= cfg.qty
        truncated = not terminated and st.step >= cfg.steps
        if truncated:
            far = st.book.best(-cfg.side)
            mark = far.price if far is not None else mid
            unfilled = cfg.qty - st.filled
            st.penalty_bps = self._bps(cfg.side * (mark - st.arrival_mid) * unfilled) + (
                cfg.penalty_bps * unfilled / cfg.qty
            )
            reward -= st.penalty_bps
        obs = self._observation(mid)
        st.last_mid = mid
        return obs, float(reward), terminated, truncated, self._info()

    # -- helpers -----------------------------------------------------------------------------

    def _bps(self, cost: float) -> float:
        """A cost in price units x shares as basis points of the arrival mid per parent share."""
        assert self.state is not None
        return 1e4 * cost / (self.state.arrival_mid * self.config.qty)

    def _observation(self, mid: float) -> np.ndarray:
        st = self.state
        assert st is not None
        cfg = self.config
        book = st.book
        bid, ask = book.best_prices()
        spread_bps = 0.0 if bid is None or ask is None else 1e4 * (ask - bid) / mid
        bid_q = sum(q for _, q in book.depth(1, 3))
        ask_q = sum(q for _, q in book.depth(-1, 3))
        imbalance = (bid_q - ask_q) / (bid_q + ask_q) if bid_q + ask_q else 0.0
        last = 1e4 * cfg.side * (mid - st.last_mid) / st.arrival_mid
        drift = 1e4 * cfg.side * (mid - st.arrival_mid) / st.arrival_mid
        obs = np.array(
            [
                1.0 - st.step / cfg.steps,
                1.0 - st.filled / cfg.qty,
                math.tanh(spread_bps / 10.0),  # a few bps is typical; tanh keeps it in [0, 1)
                cfg.side * imbalance,  # book heavier on the side the order joins: positive
                math.tanh(last / 5.0),
                math.tanh(drift / 10.0),
            ],
            np.float32,
        )
        return np.clip(obs, self.observation_space.low, self.observation_space.high)

    def _info(self) -> dict[str, Any]:
        st = self.state
        assert st is not None
        cfg = self.config
        return {
            "start_ns": st.start_ns,
            "now_ns": st.now_ns,
            "filled": st.filled,
            "fill_rate": st.filled / cfg.qty,
            "arrival_mid": st.arrival_mid,
            # shortfall of the shares filled so far, bps of the arrival mid per filled share
            "filled_shortfall_bps": (
                1e4 * st.cost / (st.arrival_mid * st.filled) if st.filled else 0.0
            ),
            # the whole order's: filled shares plus the charge for the unfilled ones
            "shortfall_bps": self._bps(st.cost) + st.penalty_bps,
        }


def _mid(book: OrderBook) -> float | None:
    bid, ask = book.best_prices()
    if bid is None or ask is None:
        return None
    return (bid + ask) / 2.0
