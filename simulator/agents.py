"""Agents that act inside a rollout: their orders are matched in the rollout's clearing house
beside the order model's, and the model's later orders see the book they leave.

An agent is built per rollout by an ``AgentFactory`` (``factory(index, rng)``; ``rng`` is the
rollout's own agent stream, so a rollout's agents do not depend on its siblings). It says when
it next wants to act (``wake_ns``) and, when that time comes, what it sends (``act``).

``AgentMux`` puts agents in front of a sampler without the rollout loop knowing: each step, for
each rollout, an agent due no later than the model's next order acts first (its order goes out
at its wake time); the model's order waits for the next step. ``Twap`` is the time-weighted
execution agent of the MarS what-if experiments (paper, Sec. 3.2 and App. H).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.book import OrderBook
from simulator.orderstream import OrderStream, OrderType
from simulator.rollout import GeneratedOrder, OrderGenerator, rollout_rng

AGENT_STREAM = 3  # the rollout_rng stream agents draw from (``simulator.rollout`` uses 0 to 2)


class Agent(Protocol):
    """One agent in one rollout."""

    def wake_ns(self) -> int | None:
        """When the agent next acts (None: it is done)."""
        ...

    def act(self, book: OrderBook, ts_ns: int) -> GeneratedOrder | None:
        """The order the agent sends at ``ts_ns`` (its wake time), or None; it then says
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


class AgentMux:
    """A sampler with agents in front of it (module docstring). ``agent_steps[i]`` lists the
    positions in rollout ``i``'s orders that its agents sent, with the agent's index."""

    def __init__(self, sampler: OrderGenerator, factories: tuple[AgentFactory, ...]) -> None:
        self.sampler = sampler
        self.factories = factories
        self.agents: list[list[Agent]] = []
        self.agent_steps: list[list[tuple[int, int]]] = []
        self._pending: list[GeneratedOrder | None] = []
        self._due: list[int] = []  # when each pending model order goes out
        self._steps: list[int] = []
        self._index: dict[int, int] = {}

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        self.sampler.begin(books, history, history_rows, open_mid, ts_ns, seed)
        n = len(books)
        self.agents = [
            [f(i, rollout_rng(seed, i, AGENT_STREAM)) for f in self.factories] for i in range(n)
        ]
        self.agent_steps = [[] for _ in range(n)]
        self._pending = [None] * n
        self._due = [0] * n
        self._steps = [0] * n
        self._index = {id(b): i for i, b in enumerate(books)}

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        rollouts = [self._index[id(b)] for b in books]
        need = [k for k, i in enumerate(rollouts) if self._pending[i] is None]
        if need:
            fresh = self.sampler.next_orders([books[k] for k in need], [ts_ns[k] for k in need])
            for k, order in zip(need, fresh, strict=True):
                self._pending[rollouts[k]] = order
                self._due[rollouts[k]] = ts_ns[k] + order.interval_ns
        out: list[GeneratedOrder] = []
        for k, i in enumerate(rollouts):
            model = self._pending[i]
            assert model is not None
            due = self._due[i]
            order = None
            for a, agent in enumerate(self.agents[i]):
                wake = agent.wake_ns()
                while wake is not None and wake <= due and order is None:
                    order = agent.act(books[k], wake)
                    if order is not None:
                        order.interval_ns = max(wake - ts_ns[k], 0)
                        self.agent_steps[i].append((self._steps[i], a))
                    wake = agent.wake_ns()
                if order is not None:
                    break
            if order is None:
                order = model
                # the model's interval counted from its own previous order; agents may have
                # sent orders in between, so it now counts from the last of those
                order.interval_ns = max(due - ts_ns[k], 0)
                self._pending[i] = None
            self._steps[i] += 1
            out.append(order)
        return out
