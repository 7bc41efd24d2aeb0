"""Where execution episodes start: forks of a recorded day (``DaySource``) or of a fixed book
(``StaticMarket``, for tests and examples), and the model context carried from one decision
interval to the next.

An episode forks the real book at its start time; each later interval forks again from the
book the previous one left, with the context extended by the orders that interval generated
(``extend_context``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.dayforks import DayForks
from simulator.engine import ForkRequest
from simulator.matching import MatchingRules
from simulator.orderstream import OrderStream
from simulator.rollout import RolloutResult, rollout_stream


class ExecutionError(ValueError):
    """An execution environment or run that cannot be set up as asked."""


class Market(Protocol):
    """What the environment forks: a request template at each of its start times."""

    instrument: str
    tick_size: int
    starts_ns: tuple[int, ...]

    def request(self, start_ns: int) -> ForkRequest:
        """The fork of the real book at ``start_ns`` (one of ``starts_ns``) with its context;
        the environment sets the horizon, seed, agents and rollouts."""
        ...


class DaySource:
    """Episode starts on a recorded day: the rebuilt book at each start time (rebuilt once, in
    time order, since the day's tape only moves forward) and the real orders before it."""

    def __init__(self, forks: DayForks, starts_ns: Sequence[int], horizon_ns: int) -> None:
        starts = sorted(set(int(t) for t in starts_ns))
        if not starts:
            raise ExecutionError("no episode start times")
        self.forks = forks
        self.instrument = forks.day.symbol
        self.tick_size = forks.tick_size
        self.starts_ns = tuple(starts)
        # Requests without their context: the context rows of every start would take
        # gigabytes; they are cut again when an episode starts (``DayForks.context``).
        empty = forks.stream.take(slice(0, 0))
        self._templates: dict[int, ForkRequest] = {}
        for t in starts:
            req = forks.request(t, horizon_ns, 1, 0)
            self._templates[t] = replace(req, context=empty, context_rows=None)

    def request(self, start_ns: int) -> ForkRequest:
        template = self._templates.get(start_ns)
        if template is None:
            raise ExecutionError(f"{start_ns} ns is not one of this source's start times")
        history, rows = self.forks.context(start_ns)
        return replace(template, book=template.book.fork(), context=history, context_rows=rows)


@dataclass(frozen=True, slots=True)
class StaticMarket:
    """One fixed book and context, forked at any of ``starts_ns`` (tests, examples)."""

    instrument: str
    book: OrderBook
    context: OrderStream
    context_rows: np.ndarray
    open_mid: float
    starts_ns: tuple[int, ...]
    rules: MatchingRules
    max_depth: int | None = None

    @property
    def tick_size(self) -> int:
        return self.rules.tick_size

    def request(self, start_ns: int) -> ForkRequest:
        if start_ns not in self.starts_ns:
            raise ExecutionError(f"{start_ns} ns is not one of this market's start times")
        return ForkRequest(
            instrument=self.instrument,
            book=self.book.fork(),
            context=self.context,
            context_rows=self.context_rows,
            open_mid=self.open_mid,
            start_ns=start_ns,
            horizon_ns=0,
            rollouts=1,
            seed=0,
            rules=self.rules,
            max_depth=self.max_depth,
        )


def concat_streams(a: OrderStream, b: OrderStream) -> OrderStream:
    """``a`` then ``b``."""
    return OrderStream(
        *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in OrderStream.__slots__)
    )


def rows_before(result: RolloutResult, levels: int) -> np.ndarray:
    """The book row (LOBSTER layout, ``levels`` levels) before each applied order of a rollout,
    as the model's context reads it. The touch is the recorded one; the rollout keeps no depth
    behind it per order, so the deeper levels are the rollout's final book's levels behind that
    touch (an approximation; the empirical generator reads the touch alone)."""
    n = len(result)
    ask = np.concatenate([[result.ask0], result.best_ask[:-1]]).astype(np.int64)
    ask_q = np.concatenate([[result.qty0[1]], result.ask_qty[:-1]]).astype(np.int64)
    bid = np.concatenate([[result.bid0], result.best_bid[:-1]]).astype(np.int64)
    bid_q = np.concatenate([[result.qty0[0]], result.bid_qty[:-1]]).astype(np.int64)
    rows = np.zeros((n, 4 * levels), np.int64)
    rows[:, 0::4] = EMPTY_ASK_PRICE
    rows[:, 2::4] = EMPTY_BID_PRICE
    rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] = ask, ask_q, bid, bid_q
    if levels > 1 and n and result.book is not None:
        end = result.book.snapshot(levels)
        for col, sign, touch in ((0, 1, ask), (2, -1, bid)):
            px = end[col::4]
            sz = end[col + 1 :: 4]
            live = sz > 0
            px, sz = px[live], sz[live]
            # levels strictly behind each order's touch, best first (ascending asks, bids
            # descending: searched on the signed price)
            first = np.searchsorted(sign * px, sign * touch, side="right")
            pad_px = np.concatenate([px, np.zeros(levels, np.int64)])
            pad_sz = np.concatenate([sz, np.zeros(levels, np.int64)])
            empty = EMPTY_ASK_PRICE if sign > 0 else EMPTY_BID_PRICE
            for k in range(1, levels):
                idx = first + k - 1
                inside = idx < len(px)
                rows[:, 4 * k + col] = np.where(inside, pad_px[idx], empty)
                rows[:, 4 * k + col + 1] = np.where(inside, pad_sz[idx], 0)
    return rows[result.applied]


def extend_context(
    history: OrderStream,
    rows: np.ndarray | None,
    result: RolloutResult,
    keep_from_ns: int,
) -> tuple[OrderStream, np.ndarray | None]:
    """The context after an interval: ``history`` (and its rows) then the orders the interval
    generated, cut to the orders at or after ``keep_from_ns`` (the context keeps its length in
    time, so the model's and the empirical generator's costs stay flat over an episode)."""
    stream = concat_streams(history, rollout_stream(result))
    if rows is not None:
        rows = np.concatenate([rows, rows_before(result, rows.shape[1] // 4)])
    cut = int(np.searchsorted(stream.ts_ns, keep_from_ns, side="left"))
    stream = stream.take(slice(cut, None))
    if rows is not None:
        rows = rows[cut:]
    return stream, rows
