"""The execution agent of one decision interval, acting inside the engine's rollout.

The configurable TWAP of the MarS paper (App. H, Algorithm 1), one interval at a time: a
passive period at the near touch (the share ``pvr`` of what the schedule asks of the interval),
then an aggressive period that cancels what still rests and takes what the interval is behind
on, up to ``levels`` price levels beyond the opposite touch (``levels`` 0: no aggressive order).
``sweep`` instead takes everything left at once, walking the visible book.

Nothing of the agent rests past its interval (its passive order is cancelled when the
aggressive period starts), so an environment that forks each interval again from the book the
last one left never has to hand a resting order from one rollout to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.book import OrderBook
from simulator.orderstream import OrderType
from simulator.rollout import AgentFill, CancelOrder, GeneratedOrder


@dataclass(frozen=True, slots=True)
class IntervalPlan:
    """What the agent does over ``[start_ns, start_ns + interval)``: ``need`` shares are due by
    the interval's end on the schedule; ``passive_qty`` rest at the near touch until
    ``aggressive_ns``, then up to ``need`` minus what filled are taken at the opposite touch
    plus ``levels - 1`` ticks. ``sweep``: ``need`` is taken at once, whatever it costs in the
    visible book."""

    side: int  # 1 buy, -1 sell
    start_ns: int
    aggressive_ns: int  # when the passive period ends
    need: int
    passive_qty: int
    levels: int
    sweep: bool = False
    tick_size: int = 100

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side must be 1 (buy) or -1 (sell), got {self.side}")
        if self.aggressive_ns <= self.start_ns:
            raise ValueError("the aggressive period must start after the interval does")
        if min(self.need, self.passive_qty, self.levels) < 0:
            raise ValueError("need, passive_qty and levels must be non-negative")

    def __call__(self, index: int, rng: np.random.Generator) -> IntervalAgent:
        return IntervalAgent(self)


class IntervalAgent:
    """The state of one ``IntervalPlan`` in one rollout."""

    __slots__ = ("done", "passive_id", "phase", "plan")

    def __init__(self, plan: IntervalPlan) -> None:
        self.plan = plan
        self.phase = 0  # 0: before the passive order, 1: before the aggressive one, 2: done
        self.done = 0  # shares filled in this interval
        self.passive_id = 0

    def wake_ns(self) -> int | None:
        p = self.plan
        if self.phase == 0:
            return p.start_ns
        if self.phase == 1:
            return p.aggressive_ns
        return None

    def act(self, book: OrderBook, ts_ns: int) -> GeneratedOrder | list | None:
        p = self.plan
        kind = int(OrderType.BID if p.side > 0 else OrderType.ASK)
        if self.phase == 0:
            if p.sweep:
                self.phase = 2
                price = sweep_price(book, p.side, p.need)
                return None if price is None else GeneratedOrder(kind, price, p.need, 0, ioc=True)
            self.phase = 1
            near = book.best(p.side)
            qty = min(p.passive_qty, p.need)
            if near is None or qty <= 0:
                return None
            return GeneratedOrder(kind, near.price, qty, 0)
        self.phase = 2
        actions: list[GeneratedOrder | CancelOrder] = []
        if self.passive_id and self.passive_id in book:
            actions.append(CancelOrder(self.passive_id))
        left = p.need - self.done
        far = book.best(-p.side)
        if p.levels > 0 and left > 0 and far is not None:
            price = far.price + p.side * (p.levels - 1) * p.tick_size
            actions.append(GeneratedOrder(kind, price, left, 0, ioc=True))
        return actions or None

    def placed(self, order_id: int, filled: int, resting: int) -> None:
        if resting > 0:
            self.passive_id = order_id

    def filled(self, fill: AgentFill) -> None:
        self.done += fill.qty


def sweep_price(book: OrderBook, side: int, qty: int) -> int | None:
    """The limit price that takes ``qty`` from the visible opposite side (its deepest price
    when the side holds less); None when that side is empty."""
    price = None
    total = 0
    for level in book.iter_levels(-side):
        price = level.price
        total += level.qty
        if total >= qty:
            break
    return price
