"""Replay of a venue's market-by-order feed into an ``OrderBook``, and the LOBSTER book check.

Policies (counted in ``ReplayStats``, never raised):

- **Seed liquidity.** Orders resting before the first message are unknown to a message file. The
  book is seeded from the first orderbook row with the first message's effect undone; each seeded
  level becomes one anonymous order (a book-minted negative id).
- **Unknown order ids.** A cancel, delete or execution of an id the book does not hold is
  resolved against anonymous liquidity at the message's side and price, oldest first (the order
  must have been part of it). What cannot be found there is counted as ``unresolved_qty`` and
  dropped; the event is counted in ``unknown_order_ids`` either way.
- **Over-fills.** A cancel or execution larger than what the order has left removes the order and
  counts the excess in ``overfill_qty``.
- **Duplicate adds** (an id already resting) and adds of a non-positive size are skipped and
  counted.
- Hidden executions, crosses and halts do not change the book; they are counted.

Integrity: what a live replayer can see without the vendor's book is counted as a fault
(``integrity_faults``): a gap in the feed's sequence (``note_seq``), a cancel or execution that
finds neither its order nor anonymous liquidity to take it from (``unresolved_qty``), and a
book left crossed by an add. After a fault the book may be wrong until the feed's next snapshot
(``resync``): each level the snapshot shows replaces the book's level there when they differ,
as one anonymous order, and levels the snapshot says are gone are removed; a later message for
an order dropped that way resolves against the anonymous liquidity like any unknown id.

``check_lobster`` additionally keeps the book to the depth the file can observe: a level-N file
carries no message for liquidity beyond its N levels, so levels that fall below level N are
dropped and liquidity that appears beyond the deepest level the book knows is added back as
anonymous orders (``entered_from_depth``). Any other difference from the orderbook row is a
mismatch and is reported, never overwritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.lobster import LobsterDay, Messages
from simulator.types import BookEvent, EventKind, Side

# How long a book may stay crossed in continuous trading before it is a fault
CROSSED_GRACE_NS = 1_000_000_000


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    adds: int = 0
    cancels: int = 0
    deletes: int = 0
    executions: int = 0
    hidden_executions: int = 0
    other_events: int = 0
    seeded_levels: int = 0
    unknown_order_ids: int = 0
    unresolved_qty: int = 0
    overfill_qty: int = 0
    duplicate_adds: int = 0
    invalid_adds: int = 0
    entered_from_depth: int = 0
    dropped_beyond_depth: int = 0
    integrity_faults: int = 0  # gaps + unresolved cancels/executions + crossed books
    sequence_gaps: int = 0  # missing messages (each gap counts once)
    crossed_books: int = 0
    resyncs: int = 0
    resynced_levels: int = 0  # levels a snapshot replaced or removed

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def row_levels(row: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """Levels ``(bids, asks)`` as ``price -> qty`` of a LOBSTER orderbook row."""
    asks: dict[int, int] = {}
    bids: dict[int, int] = {}
    for i in range(len(row) // 4):
        ap, aq, bp, bq = (int(x) for x in row[4 * i : 4 * i + 4])
        if aq > 0 and ap != EMPTY_ASK_PRICE:
            asks[ap] = aq
        if bq > 0 and bp != EMPTY_BID_PRICE:
            bids[bp] = bq
    return bids, asks


def seed_levels_before(
    row: np.ndarray, kind: int, qty: int, price: int, side: int
) -> tuple[dict[int, int], dict[int, int]]:
    """Levels ``(bids, asks)`` as ``price -> qty`` before a message, given the row after it."""
    bids, asks = row_levels(row)
    book = bids if side > 0 else asks
    if kind == EventKind.ADD:
        left = book.get(price, 0) - qty
        if left > 0:
            book[price] = left
        else:
            book.pop(price, None)
    elif kind in (EventKind.CANCEL, EventKind.DELETE, EventKind.EXECUTE):
        book[price] = book.get(price, 0) + qty
    return bids, asks


class FeedReplayer:
    """Applies a market-by-order feed to a book under the policies in the module docstring."""

    def __init__(self, book: OrderBook | None = None, *, record_synthetic: bool = False) -> None:
        self.book = book if book is not None else OrderBook()
        self.stats = ReplayStats()
        # Book changes made by policy rather than by a message (seeds, liquidity entering from
        # depth, levels dropped beyond it), as ``(kind, order_id, qty, price, side)``; kept
        # only when asked, so a converter can write them out as synthetic events.
        self.synthetic: list[tuple[int, int, int, int, int]] | None = (
            [] if record_synthetic else None
        )
        # Whether a time is in the venue's continuous session (None: always): a book crossed
        # outside it (a pre-open before its auction) is not a fault.
        self.in_session: Callable[[int], bool] | None = None
        self._last_ts: int | None = None
        self._crossed = False  # a crossing already counted, until the book uncrosses
        self._crossed_since: int | None = None  # when the book crossed in the session

    def seed(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        """Rest one anonymous order per level (liquidity of unknown origin)."""
        book = self.book
        for side, levels in ((Side.BID, bids), (Side.ASK, asks)):
            for price, qty in sorted(levels.items()):
                if qty > 0:
                    order_id = book.mint_id()
                    book.add(order_id, int(side), price, qty)
                    self.stats.seeded_levels += 1
                    if self.synthetic is not None:
                        self.synthetic.append((1, order_id, qty, price, int(side)))

    def _unknown(self, side: int, price: int, qty: int) -> int:
        """Take ``qty`` from anonymous orders at ``(side, price)``, oldest first."""
        self.stats.unknown_order_ids += 1
        book = self.book
        wanted = qty
        for order_id in book.anonymous_orders(side, price):
            if qty <= 0:
                break
            qty -= book.reduce(order_id, qty)
        if qty > 0:
            self.stats.unresolved_qty += qty
            self.stats.integrity_faults += 1
        return wanted - qty

    def apply(self, kind: int, order_id: int, qty: int, price: int, side: int) -> int:
        """Apply one message (LOBSTER column values); returns the quantity added or removed."""
        book = self.book
        stats = self.stats
        stats.events += 1
        if kind == 1:
            if order_id in book:
                stats.duplicate_adds += 1
            elif qty <= 0:
                stats.invalid_adds += 1
            else:
                book.add(order_id, side, price, qty)
                stats.adds += 1
                return qty
        elif kind == 3 or kind == 4 or kind == 2:
            if kind == 3:
                stats.deletes += 1
            elif kind == 4:
                stats.executions += 1
            else:
                stats.cancels += 1
            if order_id in book:
                if kind == 3:
                    return book.delete(order_id)
                if qty > 0:
                    removed = book.reduce(order_id, qty)
                    if removed < qty:
                        stats.overfill_qty += qty - removed
                    return removed
            elif qty > 0:
                return self._unknown(side, price, qty)
        elif kind == 5:
            stats.hidden_executions += 1
        else:
            stats.other_events += 1
        return 0

    def apply_event(self, event: BookEvent) -> int:
        """Apply one ``BookEvent`` under the same policies as ``apply``; returns the quantity
        added or removed (0 for an event skipped or counted only). When the time moves on,
        the book the previous time left is checked (``check_crossed``)."""
        ts = event.ts_ns
        if self._last_ts is not None and ts > self._last_ts:
            self.check_crossed(self._last_ts)
        self._last_ts = ts
        return self.apply(int(event.kind), event.order_id, event.qty, event.price, int(event.side))

    def check_crossed(self, ts_ns: int) -> bool:
        """A book still crossed ``CROSSED_GRACE_NS`` after it crossed in continuous trading is
        a fault, counted once until it uncrosses. Only the book between times is checked (in
        one time a venue may print an add before the fills it makes), and a crossing gets a
        grace: an opening auction's uncross prints its fills just after the open. Returns
        whether the book is crossed."""
        book = self.book
        bid, ask = book.best_bid, book.best_ask
        crossed = bid is not None and ask is not None and bid >= ask
        if not crossed or (self.in_session is not None and not self.in_session(ts_ns)):
            self._crossed_since = None  # uncrossed, or crossed outside the session (pre-open)
            if not crossed:
                self._crossed = False
            return crossed
        if self._crossed_since is None:
            self._crossed_since = ts_ns
        if not self._crossed and ts_ns - self._crossed_since >= CROSSED_GRACE_NS:
            self._crossed = True
            self.stats.crossed_books += 1
            self.stats.integrity_faults += 1
        return crossed

    def note_seq(self, seq: int, last: int | None) -> bool:
        """Check a message's sequence number against the previous one's: a gap is a fault
        (``True``); a duplicate or a step back is the caller's to drop."""
        if last is not None and seq > last + 1:
            self.stats.sequence_gaps += 1
            self.stats.integrity_faults += 1
            return True
        return False

    def resync(self, bids: dict[int, int], asks: dict[int, int], depth: int) -> int:
        """Bring the book in line with a snapshot of ``depth`` levels per side (``price ->
        qty``); returns the levels replaced or removed. Levels deeper than a full side of the
        snapshot are left alone: the snapshot says nothing about them."""
        book = self.book
        changed = 0
        for side, levels in ((1, bids), (-1, asks)):
            shown = sorted(levels, reverse=side > 0)
            deepest = shown[-1] if len(shown) >= depth else None
            for price in book.prices(side):
                if deepest is not None and (price < deepest if side > 0 else price > deepest):
                    break
                if price not in levels:
                    self._clear_level(side, price)
                    changed += 1
            for price in shown:
                level = book.level(side, price)
                if level is not None and level.qty == levels[price]:
                    continue
                if level is not None:
                    self._clear_level(side, price)
                order_id = book.mint_id()
                book.add(order_id, side, price, levels[price])
                if self.synthetic is not None:
                    self.synthetic.append((1, order_id, levels[price], price, side))
                changed += 1
        self.stats.resyncs += 1
        self.stats.resynced_levels += changed
        return changed

    def _clear_level(self, side: int, price: int) -> None:
        for order_id, qty in self.book.orders_at(side, price):
            self.book.delete(order_id)
            if self.synthetic is not None:
                self.synthetic.append((3, order_id, qty, price, side))

    def resync_row(self, row: np.ndarray, levels: int) -> int:
        """``resync`` from a LOBSTER orderbook row."""
        bids, asks = row_levels(row)
        return self.resync(bids, asks, levels)

    def replay(self, messages: Messages) -> ReplayStats:
        """Apply every message, in order. The hot loop of feed replay."""
        apply = self.apply
        for k, o, q, p, s in zip(
            messages.kind.tolist(),
            messages.order_id.tolist(),
            messages.qty.tolist(),
            messages.price.tolist(),
            messages.side.tolist(),
            strict=True,
        ):
            apply(k, o, q, p, s)
        return self.stats

    def reconcile_depth(self, row: np.ndarray, levels: int) -> None:
        """Keep the book to ``levels`` observable levels and add liquidity entering from below."""
        book = self.book
        stats = self.stats
        for side, px_col, sz_col, empty in (
            (1, 2, 3, EMPTY_BID_PRICE),
            (-1, 0, 1, EMPTY_ASK_PRICE),
        ):
            if book.level_count(side) > levels:
                dropped = book.truncate(side, levels)
                stats.dropped_beyond_depth += len(dropped)
                if self.synthetic is not None:
                    self.synthetic.extend((3, o, q, p, side) for o, p, q in dropped)
            known = book.level_count(side)
            if known >= levels:
                continue
            deepest = book.prices(side)[-1] if known else None
            for i in range(known, levels):
                price = int(row[4 * i + px_col])
                qty = int(row[4 * i + sz_col])
                if qty <= 0 or price == empty:
                    break
                beyond = deepest is None or (price < deepest if side > 0 else price > deepest)
                if beyond and book.level(side, price) is None:
                    order_id = book.mint_id()
                    book.add(order_id, side, price, qty)
                    stats.entered_from_depth += 1
                    if self.synthetic is not None:
                        self.synthetic.append((1, order_id, qty, price, side))
                    deepest = price


@dataclass(slots=True)
class Mismatch:
    row: int
    message: list[int]
    expected: list[int]
    actual: list[int]


@dataclass(slots=True)
class BookCheckReport:
    instrument: str
    levels: int
    rows: int
    matching_rows: int
    best_level_rows: int
    stats: ReplayStats
    seconds: float
    malformed_rows: int = 0
    first_mismatches: list[Mismatch] = field(default_factory=list)
    resync_every_ns: int | None = None
    # per fault episode: events from the fault to the next row the book matched
    recovery_events: list[int] = field(default_factory=list)

    @property
    def match(self) -> float:
        return self.matching_rows / self.rows if self.rows else 1.0

    @property
    def best_level_match(self) -> float:
        return self.best_level_rows / self.rows if self.rows else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "instrument": self.instrument,
            "levels": self.levels,
            "rows": self.rows,
            "match": self.match,
            "best_level_match": self.best_level_match,
            "mismatched_rows": self.rows - self.matching_rows,
            "entered_from_depth": self.stats.entered_from_depth,
            "dropped_beyond_depth": self.stats.dropped_beyond_depth,
            "unknown_order_ids": self.stats.unknown_order_ids,
            "unresolved_qty": self.stats.unresolved_qty,
            "overfill_qty": self.stats.overfill_qty,
            "seeded_levels": self.stats.seeded_levels,
            "malformed_rows": self.malformed_rows,
            "integrity_faults": self.stats.integrity_faults,
            "sequence_gaps": self.stats.sequence_gaps,
            "resync_every_s": (
                None if self.resync_every_ns is None else self.resync_every_ns / 1e9
            ),
            "resyncs": self.stats.resyncs,
            "fault_episodes": len(self.recovery_events),
            "recovery_events_median": (
                float(np.median(self.recovery_events)) if self.recovery_events else None
            ),
            "recovery_events_max": max(self.recovery_events, default=None),
            "events_per_s": self.rows / self.seconds if self.seconds > 0 else None,
            "stats": self.stats.as_dict(),
            "first_mismatches": [asdict(m) for m in self.first_mismatches],
        }


def seed_from_first_row(replayer: FeedReplayer, day: LobsterDay) -> None:
    """Seed the opening book: the first orderbook row with the first message undone."""
    if day.orderbook is None or len(day.messages) == 0:
        return
    m = day.messages
    bids, asks = seed_levels_before(
        day.orderbook[0], int(m.kind[0]), int(m.qty[0]), int(m.price[0]), int(m.side[0])
    )
    replayer.seed(bids, asks)


def check_lobster(
    day: LobsterDay, *, keep_mismatches: int = 5, resync_every_ns: int | None = None
) -> BookCheckReport:
    """Replay a LOBSTER day and compare the book with every orderbook row.

    ``resync_every_ns``: after an integrity fault, resync the book from the first orderbook row
    at or after the next multiple of that interval (0: the row of the message that showed
    the fault), as a live feed offering snapshots at that cadence would; None: never resync.
    Every fault episode (from a fault on a book that matched to the next matching row) is
    measured in events (``recovery_events``)."""
    if day.orderbook is None:
        raise ValueError("the book check needs the orderbook file")
    if resync_every_ns is not None and resync_every_ns < 0:
        raise ValueError("the resync interval must be >= 0")
    levels = day.levels
    replayer = FeedReplayer(OrderBook(day.symbol))
    book = replayer.book
    stats = replayer.stats
    seed_from_first_row(replayer, day)
    m = day.messages
    rows = day.orderbook
    lines = day.lines.tolist() if day.lines is not None else None
    matching = best = 0
    mismatches: list[Mismatch] = []
    apply = replayer.apply
    reconcile = replayer.reconcile_depth
    snapshot = book.snapshot
    last_line: int | None = None
    due_ns: int | None = None  # when the next snapshot repairs an unrepaired fault
    episode: int | None = None  # index of the fault that opened the current episode
    recovery: list[int] = []
    start = time.perf_counter()
    columns = zip(
        m.ts_ns.tolist(),
        m.kind.tolist(),
        m.order_id.tolist(),
        m.qty.tolist(),
        m.price.tolist(),
        m.side.tolist(),
        strict=True,
    )
    for i, (t, k, o, q, p, s) in enumerate(columns):
        faults = stats.integrity_faults
        if lines is not None:
            replayer.note_seq(lines[i], last_line)
            last_line = lines[i]
        apply(k, o, q, p, s)
        row = rows[i]
        reconcile(row, levels)
        if stats.integrity_faults > faults:
            if episode is None:
                episode = i
            if resync_every_ns is not None and due_ns is None:
                every = resync_every_ns
                due_ns = t if every == 0 else (t // every + 1) * every
        if due_ns is not None and t >= due_ns:
            replayer.resync_row(row, levels)
            due_ns = None
        snap = snapshot(levels)
        if np.array_equal(snap, row):
            matching += 1
            best += 1
            if episode is not None:
                recovery.append(i - episode)
                episode = None
        else:
            if np.array_equal(snap[:4], row[:4]):
                best += 1
            if len(mismatches) < keep_mismatches:
                mismatches.append(
                    Mismatch(i, [int(m.ts_ns[i]), k, o, q, p, s], row.tolist(), snap.tolist())
                )
    if episode is not None:
        recovery.append(len(rows) - episode)  # never repaired: to the end of the day
    seconds = time.perf_counter() - start
    return BookCheckReport(
        day.symbol,
        levels,
        len(rows),
        matching,
        best,
        replayer.stats,
        seconds,
        day.malformed_rows,
        mismatches,
        resync_every_ns,
        recovery,
    )
