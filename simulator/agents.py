"""Agents that act inside a rollout: their orders are matched in the rollout's clearing house
beside the order model's, and the model's later orders see the book they leave.

An agent is built per rollout by an ``AgentFactory`` (``factory(index, rng)``; ``rng`` is the
rollout's own agent stream, so a rollout's agents do not depend on its siblings). It says when
it next wants to act (``wake_ns``) and, when that time comes, what it sends (``act``): limit
orders (immediate-or-cancel or resting) and cancels of its own resting orders (``CancelOrder``).
Two optional hooks tell it what happened: ``placed(order_id, filled, resting)`` after each of
its limit orders, and ``filled(fill)`` for every fill of its orders (``AgentFill``), as the
aggressor or resting. The model's cancels never take an agent's resting order, and every fill
is also kept in the rollout's result (``RolloutResult.agent_fills``).

The rollout engine (``simulator.rollout.fork_rollouts``, ``agents=``) lets every agent due no
later than the model's next order act first: its order goes out at its wake time and is matched
in the rollout's clearing house, and the model's next order is conditioned on the book it leaves.
The execution agents of the market-impact study (``surveillance.impact``): ``Twap``, the
time-weighted agent of the MarS what-if experiments (paper, Sec. 3.2 and App. H: slices that rest
at the touch, then take what is left); ``Pov``, a share of the market's volume (told through the
optional ``market_volume(traded_qty)`` hook before each ``act``); ``MarketOrder``, one immediate
order. Each counts its own fills through the ``filled`` hook. ``Replayed``: a real window's
aggressive orders sent again at their times (the MarS counterfactual: how the simulated market
answers the orders the real one answered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.book import OrderBook
from simulator.orderstream import OrderType
from simulator.rollout import AgentFill, CancelOrder, GeneratedOrder, available_qty

Action = GeneratedOrder | CancelOrder
__all__ = [
    "Action",
    "Agent",
    "AgentFactory",
    "AgentFill",
    "CancelOrder",
    "MarketOrder",
    "MarketOrderAgent",
    "Pov",
    "PovAgent",
    "Replayed",
    "ReplayedAgent",
    "Twap",
    "TwapAgent",
    "take_price",
]


class Agent(Protocol):
    """One agent in one rollout."""

    def wake_ns(self) -> int | None:
        """When the agent next acts (None: it is done)."""
        ...

    def act(self, book: OrderBook, ts_ns: int) -> Action | list[Action] | None:
        """What the agent sends at ``ts_ns`` (its wake time), in order, or None; it then says
        its next wake time."""
        ...


AgentFactory = Callable[[int, np.random.Generator], Agent]


def take_price(book: OrderBook, side: int, levels: int | None) -> int | None:
    """The limit price of a ``side`` order that may take the opposite side's best ``levels``
    price levels (None: every level the book shows), never its deepest one when two or more
    stand: an agent order never empties the side it takes from. A rollout book shows only the
    feed's levels, and the order model rebuilds an emptied side near the price it had, which
    the hidden depth of a real book would not do. None when that side is empty."""
    depth = book.prices(-side)
    if not depth:
        return None
    usable = max(len(depth) - 1, 1)
    return depth[min(levels if levels is not None else usable, usable) - 1]


def _limit(side: int, price: int, qty: int, ioc: bool) -> GeneratedOrder:
    kind = OrderType.BID if side > 0 else OrderType.ASK
    return GeneratedOrder(int(kind), price, qty, 0, ioc=ioc)


class _Execution:
    """What every execution agent keeps: its fills, told through the ``filled`` hook."""

    __slots__ = ("filled_qty", "notional", "sent_qty")

    def __init__(self) -> None:
        self.filled_qty = 0
        self.notional = 0  # sum of price * qty over its fills (price units x shares)
        self.sent_qty = 0  # shares of the limit orders it sent

    def filled(self, fill: AgentFill) -> None:
        self.filled_qty += fill.qty
        self.notional += fill.price * fill.qty


def _check_execution(side: int, qty: int, levels: int | None) -> None:
    if side not in (1, -1):
        raise ValueError(f"side must be 1 (buy) or -1 (sell), got {side}")
    if qty <= 0:
        raise ValueError(f"qty must be positive, got {qty}")
    if levels is not None and levels <= 0:
        raise ValueError(f"levels must be positive, got {levels}")


@dataclass(frozen=True, slots=True)
class Twap:
    """Buy (``side`` 1) or sell (-1) ``qty`` shares in ``slices`` equal slices spread evenly over
    ``[start_ns, end_ns)``, as the MarS TWAP (paper, App. H, Algorithm 1).

    ``passive`` is the share of each slice's time its order rests at the near touch (the best
    bid for a buyer): at the slice's start the agent cancels what it still has resting and
    posts what the schedule asks by the slice's end, less what it has bought; when the passive
    time is over it cancels what is left and takes the shortfall with an immediate-or-cancel
    order that may reach the ``levels``-th price level of the other side (``levels=1``: the
    touch only; the paper's aggressive price ask1..ask5). What that order cannot fill stays
    unfilled. ``passive=0`` is the all-aggressive TWAP: each slice is one immediate-or-cancel
    order of the slice's own share, sent at the slice's start, never catching up.
    """

    side: int
    qty: int
    start_ns: int
    end_ns: int
    slices: int
    levels: int = 1
    tick_size: int = 100
    passive: float = 0.0

    def __post_init__(self) -> None:
        _check_execution(self.side, self.qty, self.levels)
        if self.slices <= 0:
            raise ValueError("qty, slices and levels must be positive")
        if self.end_ns <= self.start_ns:
            raise ValueError("a TWAP must end after it starts")
        if not 0.0 <= self.passive < 1.0:
            raise ValueError(f"passive must lie in [0, 1), got {self.passive}")

    def slice_start(self, k: int) -> int:
        return self.start_ns + (self.end_ns - self.start_ns) * k // self.slices

    def target(self, k: int) -> int:
        """Shares the schedule asks to have traded by the end of slice ``k``."""
        return self.qty * (k + 1) // self.slices

    def __call__(self, index: int, rng: np.random.Generator) -> TwapAgent:
        return TwapAgent(self)


class TwapAgent(_Execution):
    """The state of one ``Twap`` in one rollout."""

    __slots__ = ("events", "plan", "resting", "slice", "step")

    def __init__(self, plan: Twap) -> None:
        super().__init__()
        self.plan = plan
        self.slice = 0  # slices begun so far
        self.resting = 0  # id of the order resting at the touch (0: none)
        # (wake time, slice, aggressive phase) of every action, in time order
        self.events: list[tuple[int, int, bool]] = []
        for k in range(plan.slices):
            t0 = plan.slice_start(k)
            if plan.passive > 0:
                t1 = t0 + int((plan.slice_start(k + 1) - t0) * plan.passive)
                self.events += [(t0, k, False), (max(t1, t0 + 1), k, True)]
            else:
                self.events.append((t0, k, True))
        self.step = 0

    def wake_ns(self) -> int | None:
        return self.events[self.step][0] if self.step < len(self.events) else None

    def placed(self, order_id: int, filled: int, resting: int) -> None:
        if resting > 0:
            self.resting = order_id

    def act(self, book: OrderBook, ts_ns: int) -> Action | list[Action] | None:
        p = self.plan
        _, k, aggressive = self.events[self.step]
        self.step += 1
        self.slice = k + 1
        out: list[Action] = []
        if self.resting:  # a filled order is gone: the engine ignores its cancel
            out.append(CancelOrder(self.resting))
            self.resting = 0
        if p.passive == 0:
            qty = p.target(k) - (p.target(k - 1) if k else 0)  # the slice's own share
        else:
            qty = min(p.target(k), p.qty) - self.filled_qty
        if qty > 0:
            if aggressive:
                price = take_price(book, p.side, p.levels)
            else:
                near = book.best_bid if p.side > 0 else book.best_ask
                far = book.best_ask if p.side > 0 else book.best_bid
                price = near if near is not None else (far - p.side * p.tick_size if far else None)
            if price is not None:
                self.sent_qty += qty
                out.append(_limit(p.side, price, qty, ioc=aggressive))
        return out or None


@dataclass(frozen=True, slots=True)
class Pov:
    """Trade ``rate`` of the market's volume (percentage of volume) from ``start_ns`` until
    ``qty`` shares are done or ``end_ns`` comes: every ``interval_ns`` the agent reads the
    shares the rollout's market has traded since its start (the ``market_volume`` hook), and
    takes, with an immediate-or-cancel order reaching the ``levels``-th price level, what it
    lags behind ``rate`` of the total (its own shares included: it trades ``rate / (1 - rate)``
    of the others'). What is left at ``end_ns`` stays unfilled."""

    side: int
    qty: int
    start_ns: int
    end_ns: int
    rate: float
    interval_ns: int = 5_000_000_000
    levels: int = 1

    def __post_init__(self) -> None:
        _check_execution(self.side, self.qty, self.levels)
        if not 0.0 < self.rate < 1.0:
            raise ValueError(f"the participation rate must lie in (0, 1), got {self.rate}")
        if self.interval_ns <= 0 or self.end_ns <= self.start_ns:
            raise ValueError("a POV needs a positive interval and must end after it starts")

    def __call__(self, index: int, rng: np.random.Generator) -> PovAgent:
        return PovAgent(self)


class PovAgent(_Execution):
    """The state of one ``Pov`` in one rollout."""

    __slots__ = ("market0", "market_traded", "next_ns", "plan")

    def __init__(self, plan: Pov) -> None:
        super().__init__()
        self.plan = plan
        self.next_ns: int | None = plan.start_ns
        self.market_traded = 0  # shares the rollout's market has traded since the fork
        self.market0: int | None = None  # ... at the agent's start

    def market_volume(self, traded_qty: int) -> None:
        """The rollout's traded shares since the fork (told before each ``act``)."""
        self.market_traded = traded_qty

    def wake_ns(self) -> int | None:
        return self.next_ns

    def act(self, book: OrderBook, ts_ns: int) -> GeneratedOrder | None:
        p = self.plan
        nxt = ts_ns + p.interval_ns
        self.next_ns = nxt if nxt < p.end_ns else None
        if self.market0 is None:
            self.market0 = self.market_traded
        others = self.market_traded - self.market0 - self.filled_qty
        want = min(int(p.rate / (1.0 - p.rate) * others), p.qty) - self.filled_qty
        if self.filled_qty >= p.qty:
            self.next_ns = None
        if want <= 0:
            return None
        price = take_price(book, p.side, p.levels)
        if price is None:
            return None
        self.sent_qty += want
        return _limit(p.side, price, want, ioc=True)


@dataclass(frozen=True, slots=True)
class MarketOrder:
    """One immediate order of ``qty`` shares at ``ts_ns``: immediate-or-cancel, reaching the
    ``levels``-th price level of the other side (None: every level the book shows but its
    deepest, ``take_price``); what the book cannot fill is dropped."""

    side: int
    qty: int
    ts_ns: int
    levels: int | None = None

    def __post_init__(self) -> None:
        _check_execution(self.side, self.qty, self.levels)

    def __call__(self, index: int, rng: np.random.Generator) -> MarketOrderAgent:
        return MarketOrderAgent(self)


class MarketOrderAgent(_Execution):
    """The state of one ``MarketOrder`` in one rollout."""

    __slots__ = ("done", "plan")

    def __init__(self, plan: MarketOrder) -> None:
        super().__init__()
        self.plan = plan
        self.done = False

    def wake_ns(self) -> int | None:
        return None if self.done else self.plan.ts_ns

    def act(self, book: OrderBook, ts_ns: int) -> GeneratedOrder | None:
        p = self.plan
        self.done = True
        price = take_price(book, p.side, p.levels)
        if price is None:
            return None
        self.sent_qty += p.qty
        return _limit(p.side, price, p.qty, ioc=True)


@dataclass(frozen=True, slots=True)
class Replayed:
    """Immediate orders sent at given times: each ``(ts_ns, side, ticks, qty)`` goes out as an
    immediate-or-cancel order of ``qty`` priced ``ticks`` ticks past the other side's best at
    that moment in the rollout (0: the touch only), so it reaches as deep into the rollout's
    book as the real order reached into the real one. What the book cannot fill is dropped.
    ``orders`` in time order; orders due at the same time go out together, in their order,
    each priced against the touch before the first of them trades (a real order's ticks are
    read against the touch it met, after the ones before it at the same time).
    ``tick_size``: the instrument's, in price units (no default: a wrong tick moves every
    price). ``shares`` (one per order, in (0, 1]): size each order as that share of what
    rests in the rollout's book up to its price instead of ``qty`` (1: all of it, as most real
    aggressive orders take the whole touch), so that it takes of the rollout's book what the
    real order took of the real one (of orders due together, each takes its share of what the
    ones before it left)."""

    orders: tuple[tuple[int, int, int, int], ...]
    tick_size: int
    shares: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for _ts, side, ticks, qty in self.orders:
            _check_execution(side, qty, None)
            if ticks < 0:
                raise ValueError(f"ticks must be >= 0, got {ticks}")
        if self.shares is not None:
            if len(self.shares) != len(self.orders):
                raise ValueError("give one share per replayed order")
            if not all(0.0 < x <= 1.0 for x in self.shares):
                raise ValueError("shares must be in (0, 1]")
        times = [o[0] for o in self.orders]
        if times != sorted(times):
            raise ValueError("replayed orders must be in time order")
        if self.tick_size <= 0:
            raise ValueError(f"tick_size must be positive, got {self.tick_size}")

    def __call__(self, index: int, rng: np.random.Generator) -> ReplayedAgent:
        return ReplayedAgent(self)


class ReplayedAgent(_Execution):
    """The state of one ``Replayed`` in one rollout."""

    __slots__ = ("next", "plan")

    def __init__(self, plan: Replayed) -> None:
        super().__init__()
        self.plan = plan
        self.next = 0

    def wake_ns(self) -> int | None:
        orders = self.plan.orders
        return orders[self.next][0] if self.next < len(orders) else None

    def act(self, book: OrderBook, ts_ns: int) -> Action | list[Action] | None:
        p, out = self.plan, []
        taken = {1: 0, -1: 0}  # sized orders of this call, by side: not yet matched
        while self.next < len(p.orders) and p.orders[self.next][0] <= ts_ns:
            _, side, ticks, qty = p.orders[self.next]
            share = None if p.shares is None else p.shares[self.next]
            self.next += 1
            far = book.best_ask if side > 0 else book.best_bid
            if far is None:
                continue  # nothing to take on that side
            price = far + side * ticks * p.tick_size
            if share is not None:
                # a real order's share was of what the ones before it at its time had left
                kind = OrderType.BID if side > 0 else OrderType.ASK
                left = max(available_qty(book, int(kind), price) - taken[side], 0)
                qty = max(1, round(share * left))
                taken[side] += qty
            self.sent_qty += qty
            out.append(_limit(side, price, qty, ioc=True))
        return out or None
