"""A window of order flow with the book touch after every order, and the one way to build it.

A ``Trajectory`` is what the stylized facts read, for the real market and for a rollout alike.
The real window's trajectory is recorded while a book applies the window's events
(``TrajectoryRecorder``): the live pipeline records as its book moves, and
``trajectory_from_events`` records over a fork of an opening book. Rollouts give theirs with
``Trajectory.from_rollout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.lobster import Messages
from simulator.orderstream import OrderStream, OrderType, convert_messages
from simulator.replay import FeedReplayer
from simulator.types import BookEvent
from simulator.units import NS_PER_MIN

CANCEL = int(OrderType.CANCEL)


@dataclass(slots=True)
class Trajectory:
    """One window of order flow with the book touch after every order (real or simulated).

    ``type``: 0 ask, 1 bid, 2 cancel (``OrderType``). ``best_bid``/``best_ask`` use the book's
    empty sentinels when a side is empty. ``bid0``/``ask0`` is the touch at ``start_ns``.
    """

    start_ns: int
    end_ns: int
    bid0: int
    ask0: int
    ts_ns: np.ndarray
    type: np.ndarray
    qty: np.ndarray
    aggressive: np.ndarray
    best_bid: np.ndarray
    best_ask: np.ndarray
    tick_size: int = 100
    # shares at the best bid / best ask after every order, and at ``start_ns`` (optional: the
    # book-shape facts need them; 0 where a side is empty)
    bid_qty: np.ndarray | None = None
    ask_qty: np.ndarray | None = None
    qty0: tuple[int, int] = (0, 0)
    # optional venue / clearing-house ids (a limit order's own id; the id a cancel removed
    # shares from; 0 where none): what ``fleeting`` pairs adds and cancels by
    order_id: np.ndarray | None = None
    # optional limit price of every order (a cancel's: the cancelled order's; real feeds only):
    # what the order-level evidence of a decision reports (surveillance.detection.orders)
    price: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        columns = ["type", "qty", "aggressive", "best_bid", "best_ask"]
        if self.order_id is not None:
            columns.append("order_id")
        if self.price is not None:
            columns.append("price")
        if (self.bid_qty is None) != (self.ask_qty is None):
            raise ValueError("trajectory needs both bid_qty and ask_qty, or neither")
        if self.bid_qty is not None:
            columns += ["bid_qty", "ask_qty"]
        for name in columns:
            if len(getattr(self, name)) != n:
                raise ValueError(f"trajectory column {name} has {len(getattr(self, name))} != {n}")
        if self.end_ns <= self.start_ns:
            raise ValueError("a window must end after it starts")

    @classmethod
    def from_rollout(cls, result: object, *, tick_size: int = 100) -> Trajectory:
        """The orders of a ``simulator.rollout.RolloutResult`` that reached the market: the
        applied ones and the void cancels (generated flow that found nothing to cancel, like a
        real cancel of an order below the observed depth); orders the rules rejected are left
        out, as a venue's feed never shows them."""
        r = result
        keep = r.applied | (r.type == CANCEL)  # type: ignore[attr-defined]
        return cls(
            start_ns=r.start_ns,  # type: ignore[attr-defined]
            end_ns=r.end_ns,  # type: ignore[attr-defined]
            bid0=r.bid0,  # type: ignore[attr-defined]
            ask0=r.ask0,  # type: ignore[attr-defined]
            ts_ns=r.ts_ns[keep],  # type: ignore[attr-defined]
            type=r.type[keep],  # type: ignore[attr-defined]
            qty=r.qty[keep],  # type: ignore[attr-defined]
            aggressive=r.aggressive[keep],  # type: ignore[attr-defined]
            best_bid=r.best_bid[keep],  # type: ignore[attr-defined]
            best_ask=r.best_ask[keep],  # type: ignore[attr-defined]
            tick_size=tick_size,
            bid_qty=r.bid_qty[keep],  # type: ignore[attr-defined]
            ask_qty=r.ask_qty[keep],  # type: ignore[attr-defined]
            qty0=r.qty0,  # type: ignore[attr-defined]
            order_id=r.order_id[keep],  # type: ignore[attr-defined]
        )

    @property
    def minutes(self) -> int:
        return int((self.end_ns - self.start_ns) // NS_PER_MIN)

    def touch_view(self) -> Trajectory:
        """The orders a feed that shows one level per side (a LOBSTER level-1 file) would
        carry: those that moved a best price or changed the shares at it. An order or cancel
        deeper in the book, or a cancel that found nothing, leaves the touch as it was and is
        not in such a feed. Without touch quantities, the orders that moved a best price."""
        bid = np.asarray(self.best_bid)
        ask = np.asarray(self.best_ask)
        changed = (bid != np.concatenate([[self.bid0], bid[:-1]])) | (
            ask != np.concatenate([[self.ask0], ask[:-1]])
        )
        if self.bid_qty is not None and self.ask_qty is not None:
            bq, aq = np.asarray(self.bid_qty), np.asarray(self.ask_qty)
            changed |= bq != np.concatenate([[self.qty0[0]], bq[:-1]])
            changed |= aq != np.concatenate([[self.qty0[1]], aq[:-1]])
        return self._subset(changed)

    def _subset(self, keep: np.ndarray) -> Trajectory:
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[keep]

        return Trajectory(
            self.start_ns,
            self.end_ns,
            self.bid0,
            self.ask0,
            self.ts_ns[keep],
            self.type[keep],
            self.qty[keep],
            self.aggressive[keep],
            self.best_bid[keep],
            self.best_ask[keep],
            tick_size=self.tick_size,
            bid_qty=cut(self.bid_qty),
            ask_qty=cut(self.ask_qty),
            qty0=self.qty0,
            order_id=cut(self.order_id),
            price=cut(self.price),
        )

    def two_sided(self) -> np.ndarray:
        return (self.best_bid != EMPTY_BID_PRICE) & (self.best_ask != EMPTY_ASK_PRICE)

    def touch_qty_at(self, times_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shares at the best bid and at the best ask in force at each time."""
        if self.bid_qty is None or self.ask_qty is None:
            raise ValueError("this trajectory has no touch quantities")
        idx = np.searchsorted(self.ts_ns, times_ns, side="right") - 1
        bid = np.concatenate([[self.qty0[0]], self.bid_qty])[idx + 1]
        ask = np.concatenate([[self.qty0[1]], self.ask_qty])[idx + 1]
        return bid, ask

    def mid_at(self, times_ns: np.ndarray) -> np.ndarray:
        """Mid price (float units) in force at each time (last two-sided touch at or before)."""
        ok = self.two_sided()
        ts = np.concatenate([[self.start_ns], self.ts_ns[ok]])
        mid0 = (self.bid0 + self.ask0) / 2.0
        if self.bid0 == EMPTY_BID_PRICE or self.ask0 == EMPTY_ASK_PRICE:
            mid0 = np.nan
        mids = np.concatenate([[mid0], (self.best_bid[ok] + self.best_ask[ok]) / 2.0])
        # forward-fill a missing opening mid with the first one seen
        if np.isnan(mids[0]) and len(mids) > 1:
            mids[0] = mids[1]
        idx = np.searchsorted(ts, times_ns, side="right") - 1
        return mids[np.clip(idx, 0, None)]


def _messages(events: Sequence[BookEvent]) -> Messages:
    return Messages(
        ts_ns=np.fromiter((e.ts_ns for e in events), np.int64, len(events)),
        kind=np.fromiter((int(e.kind) for e in events), np.int8, len(events)),
        order_id=np.fromiter((e.order_id for e in events), np.int64, len(events)),
        qty=np.fromiter((e.qty for e in events), np.int64, len(events)),
        price=np.fromiter((e.price for e in events), np.int64, len(events)),
        side=np.fromiter((int(e.side) for e in events), np.int8, len(events)),
    )


def order_stream(events: Sequence[BookEvent]) -> tuple[OrderStream, np.ndarray]:
    """MarS orders of real events (synthetic reconciliation events are not orders).

    Returns the stream and, per order, the index in ``events`` of its last message (the book
    after that message is the book after the order).
    """
    real = np.fromiter((not e.synthetic for e in events), bool, len(events))
    index = np.flatnonzero(real)
    stream, _ = convert_messages(_messages([events[i] for i in index]))
    first = index[stream.source_row] if len(stream) else np.zeros(0, np.int64)
    # an order's messages end just before the next order's first message
    last = np.empty(len(first), dtype=np.int64)
    if len(first):
        last[:-1] = first[1:] - 1
        last[-1] = len(events) - 1
    return stream, last


class TrajectoryRecorder:
    """Notes the touch of ``book`` at the start and after each event applied to it; ``finish``
    turns the events and the notes into the window's ``Trajectory``."""

    __slots__ = ("_ask_qty", "_asks", "_bid_qty", "_bids", "book", "qty0", "touch0")

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        bid, ask = book.best_bid, book.best_ask
        self.touch0 = (
            EMPTY_BID_PRICE if bid is None else bid,
            EMPTY_ASK_PRICE if ask is None else ask,
        )
        self.qty0 = book.touch_qty()
        self._bids: list[int] = []
        self._asks: list[int] = []
        self._bid_qty: list[int] = []
        self._ask_qty: list[int] = []

    def note(self) -> None:
        """Record the touch after the event just applied."""
        book = self.book
        bid, ask = book.best(1), book.best(-1)
        if bid is None:
            self._bids.append(EMPTY_BID_PRICE)
            self._bid_qty.append(0)
        else:
            self._bids.append(bid.price)
            self._bid_qty.append(bid.qty)
        if ask is None:
            self._asks.append(EMPTY_ASK_PRICE)
            self._ask_qty.append(0)
        else:
            self._asks.append(ask.price)
            self._ask_qty.append(ask.qty)

    def finish(
        self,
        events: Sequence[BookEvent],
        start_ns: int,
        end_ns: int,
        tick_size: int,
        orders: tuple[OrderStream, np.ndarray] | None = None,
    ) -> Trajectory:
        """The trajectory of ``events`` (one ``note`` each, in order) over ``[start, end)``;
        ``orders``: their ``order_stream`` when the caller has it already."""
        if len(events) != len(self._bids):
            raise ValueError(f"{len(events)} events but {len(self._bids)} touches noted")
        stream, last = orders if orders is not None else order_stream(events)
        i64 = np.int64
        return Trajectory(
            start_ns=start_ns,
            end_ns=end_ns,
            bid0=self.touch0[0],
            ask0=self.touch0[1],
            ts_ns=stream.ts_ns,
            type=stream.type,
            qty=stream.qty,
            aggressive=stream.aggressive,
            best_bid=np.asarray(self._bids, dtype=i64)[last],
            best_ask=np.asarray(self._asks, dtype=i64)[last],
            tick_size=tick_size,
            bid_qty=np.asarray(self._bid_qty, dtype=i64)[last],
            ask_qty=np.asarray(self._ask_qty, dtype=i64)[last],
            qty0=self.qty0,
            order_id=stream.order_id,
            price=stream.price,
        )


def trajectory_from_events(
    opening_book: OrderBook,
    events: Sequence[BookEvent],
    start_ns: int,
    end_ns: int,
    tick_size: int,
) -> Trajectory:
    """The real window as a ``Trajectory``: its orders and the touch after each of them,
    replayed over a fork of ``opening_book`` (which is left as it is)."""
    replayer = FeedReplayer(opening_book.fork())
    recorder = TrajectoryRecorder(replayer.book)
    for e in events:
        replayer.apply_event(e)
        recorder.note()
    return recorder.finish(events, start_ns, end_ns, tick_size)
