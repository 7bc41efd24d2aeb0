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
``Twap`` is the time-weighted
execution agent of the MarS what-if experiments (paper, Sec. 3.2 and App. H).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.book import OrderBook
from simulator.orderstream import OrderType
from simulator.rollout import AgentFill, CancelOrder, GeneratedOrder

Action = GeneratedOrder | CancelOrder
__all__ = ["Action", "Agent", "AgentFactory", "AgentFill", "CancelOrder", "Twap", "TwapAgent"]


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


@dataclass(frozen=True, slots=True)
class Twap:
    """Buy (``side`` 1) or sell (-1) ``qty`` shares in ``slices`` equal child orders spread
    evenly over ``[start_ns, end_ns)``; each child is an immediate-or-cancel limit order at the
    opposite touch plus ``levels - 1`` ticks (``levels=1``: take the touch only)."""

    side: int
    qty: int
    start_ns: int
    end_ns: int
    slices: int
    levels: int = 1
    tick_size: int = 100

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side must be 1 (buy) or -1 (sell), got {self.side}")
        if self.qty <= 0 or self.slices <= 0 or self.levels <= 0:
            raise ValueError("qty, slices and levels must be positive")
        if self.end_ns <= self.start_ns:
            raise ValueError("a TWAP must end after it starts")

    def __call__(self, index: int, rng: np.random.Generator) -> TwapAgent:
        return TwapAgent(self)


class TwapAgent:
    """The state of one ``Twap`` in one rollout."""

    __slots__ = ("plan", "sent_qty", "slice")

    def __init__(self, plan: Twap) -> None:
        self.plan = plan
        self.slice = 0
        self.sent_qty = 0  # child order sizes sent so far (fills: the rollout's results)

    def wake_ns(self) -> int | None:
        p = self.plan
        if self.slice >= p.slices:
            return None
        return p.start_ns + (p.end_ns - p.start_ns) * self.slice // p.slices

    def act(self, book: OrderBook, ts_ns: int) -> GeneratedOrder | None:
        p = self.plan
        k = self.slice
        self.slice += 1
        qty = p.qty * (k + 1) // p.slices - p.qty * k // p.slices
        touch = book.best(-p.side)  # the side a buyer takes from is the ask
        if touch is None or qty <= 0:
            return None
        price = touch.price + p.side * (p.levels - 1) * p.tick_size
        self.sent_qty += qty
        kind = OrderType.BID if p.side > 0 else OrderType.ASK
        return GeneratedOrder(int(kind), price, qty, 0, ioc=True)
