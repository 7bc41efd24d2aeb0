"""A recorded LOBSTER day as the engine's input: the real book at any time, fork requests at
chosen times, and the real trajectory that played out after each.

Every offline use of the engine on a recorded day (the realism study, forecasting, market
impact, the execution environment, the rollout benchmark) forks from the same place: the book
rebuilt by replaying the feed (seeded from the first orderbook row and kept to the file's depth,
as ``simulator.replay.check_lobster`` replays it), with the real orders of the preceding
``context_ns`` as the order model's context and the book rows they met. ``DayForks`` builds
those requests once so that no use rebuilds them its own way.

The tape only moves forward: ask for requests in non-decreasing time order.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simulator.book import OrderBook
from simulator.engine import ForkRequest, window_seed
from simulator.lobster import FeedError, LobsterDay
from simulator.matching import MatchingRules
from simulator.orderstream import OrderStream, from_lobster
from simulator.replay import FeedReplayer, seed_from_first_row
from simulator.trajectory import Trajectory
from simulator.units import NS_PER_MIN, NS_PER_S, clock

CONTEXT_NS = 30 * NS_PER_MIN  # real order flow before a fork given to the model


class FeedTape:
    """The real book, advanced message by message (as ``check_lobster`` replays it)."""

    def __init__(self, day: LobsterDay) -> None:
        if day.orderbook is None:
            raise FeedError("forking a recorded day needs the LOBSTER orderbook file (book rows)")
        self.day = day
        self.replayer = FeedReplayer(OrderBook(day.symbol))
        seed_from_first_row(self.replayer, day)
        self.position = 0  # messages applied so far
        m = day.messages
        self._cols = (
            m.kind.tolist(),
            m.order_id.tolist(),
            m.qty.tolist(),
            m.price.tolist(),
            m.side.tolist(),
        )

    def advance_to(self, message_index: int) -> OrderBook:
        """The book after messages ``[0, message_index)``."""
        if message_index < self.position:
            raise ValueError("the tape only moves forward")
        apply = self.replayer.apply
        reconcile = self.replayer.reconcile_depth
        rows = self.day.orderbook
        levels = self.day.levels
        kind, oid, qty, price, side = self._cols
        for i in range(self.position, message_index):
            apply(kind[i], oid[i], qty[i], price[i], side[i])
            reconcile(rows[i], levels)  # type: ignore[index]
        self.position = max(self.position, message_index)
        return self.replayer.book


def real_trajectory(
    day: LobsterDay, stream: OrderStream, start_ns: int, end_ns: int, tick_size: int
) -> Trajectory:
    """The real span as a ``Trajectory`` read from the vendor's own book rows: the book after
    each order is the orderbook row just before the next order (its ``source_row - 1``).
    Offline studies measure rollouts against the market as recorded, not as rebuilt: the
    product builds real trajectories from its own book (``simulator.trajectory``), and the rows
    are the independent check on that book (``surveillance book-check``)."""
    rows = day.orderbook
    if rows is None:
        raise FeedError("the real trajectory is read from the LOBSTER orderbook file")
    i0 = int(np.searchsorted(stream.ts_ns, start_ns, side="left"))
    i1 = int(np.searchsorted(stream.ts_ns, end_ns, side="left"))
    src = stream.source_row
    # the book after order j is the row just before order j + 1 (the day's last row at the end)
    nxt = np.append(src[i0 + 1 : i1 + 1], len(rows)) if i1 >= len(stream) else src[i0 + 1 : i1 + 1]
    after = nxt[: i1 - i0].astype(np.int64) - 1
    before = max(int(src[i0]) - 1, 0) if i0 < len(stream) else len(rows) - 1
    return Trajectory(
        start_ns=start_ns,
        end_ns=end_ns,
        bid0=int(rows[before, 2]),
        ask0=int(rows[before, 0]),
        ts_ns=stream.ts_ns[i0:i1],
        type=stream.type[i0:i1],
        qty=stream.qty[i0:i1],
        aggressive=stream.aggressive[i0:i1],
        best_bid=rows[after, 2],
        best_ask=rows[after, 0],
        tick_size=tick_size,
        order_id=stream.order_id[i0:i1],
    )


class DayForks:
    """Fork requests on one recorded day (``day`` must carry its orderbook rows).

    ``request(start_ns, horizon_ns, rollouts, seed)`` is the request an offline use sends to
    the engine at ``start_ns``: the rebuilt book there (a copy), the real orders of the
    ``context_ns`` before it with the rows they met, the day's open mid, the engine's window
    seed for (seed, symbol, start), the instrument's matching rules, and rollout books kept to
    the file's depth. Keyword arguments set the request's other fields (agents, snapshots...).
    """

    def __init__(
        self,
        day: LobsterDay,
        stream: OrderStream | None = None,
        context_ns: int = CONTEXT_NS,
    ) -> None:
        self.day = day
        self.stream = stream if stream is not None else from_lobster(day)
        self.context_ns = context_ns
        self.tape = FeedTape(day)
        rows = day.orderbook
        assert rows is not None  # FeedTape checked
        self.rows = rows
        self.open_mid = (float(rows[0, 0]) + float(rows[0, 2])) / 2.0
        self.rules = MatchingRules.from_instrument(day.instrument)
        self.tick_size = day.instrument.tick_size
        self.first_ns = int(day.messages.ts_ns[0])
        self.last_ns = int(day.messages.ts_ns[-1])

    def first_order(self, ts_ns: int) -> int:
        """Index in ``stream`` of the first order at or after ``ts_ns``."""
        return int(np.searchsorted(self.stream.ts_ns, ts_ns, side="left"))

    def book_at(self, ts_ns: int) -> OrderBook:
        """A copy of the real book just before the first order at or after ``ts_ns``."""
        i0 = self.first_order(ts_ns)
        if i0 >= len(self.stream):
            raise FeedError(f"no orders after {clock(ts_ns)} in {self.day.symbol}'s day")
        return self.tape.advance_to(int(self.stream.source_row[i0])).fork()

    def context(self, ts_ns: int) -> tuple[OrderStream, np.ndarray]:
        """The real orders of the ``context_ns`` before ``ts_ns`` and the book row each met."""
        i0 = self.first_order(ts_ns)
        c0 = int(np.searchsorted(self.stream.ts_ns, ts_ns - self.context_ns, side="left"))
        history = self.stream.take(slice(c0, i0))
        return history, self.rows[np.maximum(history.source_row - 1, 0)]

    def request(
        self,
        start_ns: int,
        horizon_ns: int,
        rollouts: int,
        seed: int,
        **fields: object,
    ) -> ForkRequest:
        """The engine request at ``start_ns`` (times non-decreasing across calls)."""
        if start_ns < self.first_ns or start_ns + horizon_ns > self.last_ns + NS_PER_S:
            raise FeedError(
                f"a fork of {clock(start_ns)} to {clock(start_ns + horizon_ns)} lies outside "
                f"{self.day.symbol}'s data ({clock(self.first_ns)} to {clock(self.last_ns)})"
            )
        book = self.book_at(start_ns)
        history, rows = self.context(start_ns)
        request = ForkRequest(
            instrument=self.day.symbol,
            book=book,
            context=history,
            context_rows=rows,
            open_mid=self.open_mid,
            start_ns=start_ns,
            horizon_ns=horizon_ns,
            rollouts=rollouts,
            seed=window_seed(seed, self.day.symbol, start_ns),
            rules=self.rules,
            max_depth=self.day.levels,
        )
        return replace(request, **fields) if fields else request  # type: ignore[arg-type]

    def real(self, start_ns: int, end_ns: int) -> Trajectory:
        """What really happened over ``[start_ns, end_ns)``."""
        return real_trajectory(self.day, self.stream, start_ns, end_ns, self.tick_size)
