"""Bitstamp's live-orders feed (``LOCAL_MS EVENT JSON`` lines) into normalized book events.

Units: prices in USD x 10,000 (a $0.01 tick is 100 units, LOBSTER's scale), quantities in
satoshi (1e-8 BTC, ``qty_scale`` 1e8), times ``LOCAL_MS`` x 1e6 (ns since the epoch, UTC).

Mapping (the book semantics of ``simulator.replay.FeedReplayer``):

- The feed starts mid-session. Until the first ``order_book`` snapshot nothing is written; at
  it the book is seeded with synthetic adds: the orders the feed already announced, under
  their own ids where the snapshot shows them (or deeper than it shows), the rest of each
  level as one anonymous order.
- ``order_created``: an ``add``. An order that crosses the opposite best price is an
  aggressor: Bitstamp prints it first at its full size and then walks its price and amount
  through the levels it takes. It is held back until its sweep is over (another order is
  created, a snapshot comes, or a second passes) and only what is left then is added; its
  own decreases meanwhile are the taker's side of trades and write nothing, so each trade
  is counted once, as the resting order's ``execute``. One that would still cross the book
  waits up to ``CROSS_WAIT_MS`` for the makers' decreases and is then dropped: the venue
  never rests a crossed book, and the next snapshot's resync restores what really rests.
- ``order_changed`` (the new remaining amount): a decrease is an ``execute`` when a trade at
  the order's price for exactly that amount is printed close by (``TRADE_WINDOW``), else a
  ``cancel``; an increase or a new price loses priority (``delete`` + ``add``).
- ``order_deleted``: with amount 0 the order was filled: an ``execute`` of what it had left
  when a trade at its price is close by, else a ``delete``; with an amount left, a ``delete``.
  An id never seen (resting before the feed began) is taken from the anonymous liquidity at
  its price, for the trade's amount when it was a fill, as far as that liquidity holds it;
  the rest (orders deeper than any snapshot showed) was never in our book and is counted
  (``unseen_qty``), not written: a replay of the events resolves every removal.
- ``trade``: used only to classify decreases (it names no order).
- ``order_book`` (top 20 levels each side): the opening book, then reconciliation only.

Malformed lines (no three fields, a bad number, unknown event, a JSON error, fields missing)
are counted and skipped.
"""

from __future__ import annotations

import bz2
import gzip
import json
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.book import OrderBook
from simulator.lobster import FeedError
from simulator.normalized import frame_from_rows
from simulator.replay import FeedReplayer
from simulator.types import EventKind, Instrument, Side

PRICE_SCALE = 10_000  # USD x 10,000, as LOBSTER
TICK = 100  # $0.01
QTY_SCALE = 100_000_000  # satoshi per BTC
SNAPSHOT_LEVELS = 20
TRADE_WINDOW = (10, 50)  # a trade classifies a decrease this many lines before / after it
TRADE_WINDOW_MS = 2_000
SWEEP_MS = 1_000  # an aggressor still walking the book after this long is added
CROSS_WAIT_MS = 5_000  # how long one that would cross waits for the makers' decreases
RESYNC_QUIET_MS = 1_000  # a level with an order event this close to a snapshot is not resynced
RESYNC_LOOKAHEAD = 64  # lines after a snapshot searched for such events
_ORDER_EVENTS = ("order_created", "order_changed", "order_deleted")
EVENTS = (*_ORDER_EVENTS, "trade", "order_book")
ADD, CANCEL, DELETE, EXECUTE = (
    int(EventKind.ADD),
    int(EventKind.CANCEL),
    int(EventKind.DELETE),
    int(EventKind.EXECUTE),
)
BID, ASK = int(Side.BID), int(Side.ASK)
Row = tuple[int, int, int, int, int, int, bool]


class BitstampError(FeedError):
    """A Bitstamp log that cannot be used at all (missing, unreadable, no event in it)."""


def _fixed(text: Any, digits: int) -> int:
    """A decimal string (or number) as an integer of ``10**-digits`` units, exactly."""
    if isinstance(text, float | int) and not isinstance(text, bool):
        value = round(text * 10**digits)
        return int(value)
    if not isinstance(text, str):
        raise ValueError(f"not a number: {text!r}")
    whole, _, frac = text.strip().partition(".")
    if len(frac) > digits and frac[digits:].strip("0"):
        raise ValueError(f"finer than 1e-{digits}: {text!r}")
    frac = (frac[:digits]).ljust(digits, "0")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole or "0")) * 10**digits + int(frac or "0"))


@dataclass(slots=True)
class Line:
    ms: int
    event: str
    data: dict[str, Any]


def open_text(path: Path) -> Any:
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def read_lines(path: str | Path, *, limit: int | None = None) -> tuple[list[Line], int]:
    """The well-formed lines of a log (the first ``limit`` lines only) and how many were not."""
    path = Path(path)
    if not path.exists():
        raise BitstampError(f"no such file: {path}")
    good: list[Line] = []
    bad = 0
    try:
        with open_text(path) as fh:
            for n, text in enumerate(fh):
                if limit is not None and n >= limit:
                    break
                line = _parse(text)
                if line is None:
                    if text.strip():
                        bad += 1
                    continue
                good.append(line)
    except (OSError, EOFError, ValueError) as exc:
        if not good:
            raise BitstampError(f"cannot read {path}: {exc}") from exc
        bad += 1  # a truncated archive: keep what was read
    return good, bad


def _parse(text: str) -> Line | None:
    parts = text.split(" ", 2)
    if len(parts) != 3 or parts[1] not in EVENTS:
        return None
    try:
        ms = int(parts[0])
        data = json.loads(parts[2])
    except ValueError:
        return None
    if not isinstance(data, dict) or ms < 0:
        return None
    try:
        if parts[1] == "order_book":
            data = {
                "bids": _levels(data["bids"]),
                "asks": _levels(data["asks"]),
            }
        elif parts[1] == "trade":
            data = {"price": _fixed(data["price"], 4), "amount": _fixed(data["amount"], 8)}
            if data["amount"] <= 0:
                return None
        else:
            side = {0: BID, 1: ASK}[int(data["order_type"])]
            data = {
                "id": int(data["id"]),
                "side": side,
                "price": _fixed(data["price"], 4),
                "amount": _fixed(data["amount"], 8),
            }
            if data["amount"] < 0 or data["price"] <= 0:
                return None
    except (KeyError, ValueError, TypeError):
        return None
    return Line(ms, parts[1], data)


def _levels(raw: Any) -> list[tuple[int, int]]:
    # through float, for speed (80 numbers a snapshot): exact for 2-decimal prices and for
    # 8-decimal amounts below 1e7 BTC, far beyond any level
    return [(round(float(p) * PRICE_SCALE), round(float(a) * QTY_SCALE)) for p, a in raw]


@dataclass(slots=True)
class BitstampCheck:
    """What the conversion saw and how the rebuilt book compares with the venue's top-20
    snapshots (every ``order_book`` line after the first, the one the book is seeded from)."""

    lines: int = 0
    malformed_lines: int = 0
    before_first_snapshot: int = 0  # events already reflected in the first snapshot
    seeded_orders: int = 0  # known ids seeded from the first snapshot
    seeded_anonymous: int = 0
    duplicate_creates: int = 0
    aggressors: int = 0  # orders held back while they swept the book
    aggressors_rested: int = 0  # of which some was left to rest
    taker_qty: int = 0  # satoshi the aggressors took (their side of trades, written once)
    fills: int = 0  # decreases written as execute (a trade confirmed them)
    fills_unconfirmed: int = 0  # amount-0 deletes with no trade close by: written as deletes
    partial_cancels: int = 0  # decreases no trade explains
    requeued: int = 0  # a new price or a larger amount
    unknown_order_ids: int = 0  # changes and deletes of ids never seen
    trades: int = 0
    trades_unmatched: int = 0  # trades no resting order's decrease took
    crossed_dropped: int = 0  # aggressors still crossing the book long after their sweep
    unseen_qty: int = 0  # deletes and fills of pre-feed orders deeper than the book knew
    snapshots: int = 0
    snapshots_matched: int = 0  # all levels equal (price and amount, both sides)
    snapshots_touch_matched: int = 0  # best bid and ask equal (price and amount)
    snapshots_touch_price_matched: int = 0
    snapshots_crossed: int = 0  # the rebuilt book crossed when a snapshot came
    resync_levels: int = 0  # levels corrected from a snapshot (synthetic events)
    resync_added_qty: int = 0
    resync_removed_qty: int = 0
    first_mismatches: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BitstampFeed:
    frame: pd.DataFrame
    instrument: Instrument
    check: BitstampCheck
    replay: dict[str, int]
    source: str = ""

    @property
    def malformed(self) -> int:
        return self.check.malformed_lines


def instrument(symbol: str = "BTCUSD") -> Instrument:
    """Bitstamp BTC/USD: $0.01 tick, 1 satoshi lot, trading around the clock."""
    return Instrument(
        symbol,
        tick_size=TICK,
        lot_size=1,
        price_scale=PRICE_SCALE,
        price_band_bps=None,
        venue="Bitstamp",
        timezone="UTC",
        session_open="00:00",
        session_close="24:00",
        qty_scale=QTY_SCALE,
        trade_days="Mon-Sun",
    )


class _Trades:
    """The log's trades by price, each taken by at most one resting order's decrease."""

    def __init__(self, lines: list[Line]) -> None:
        self.by_price: dict[int, list[int]] = {}
        self.used: set[int] = set()
        self.lines = lines
        for i, line in enumerate(lines):
            if line.event == "trade":
                self.by_price.setdefault(line.data["price"], []).append(i)

    def take(self, i: int, price: int, amount: int | None) -> int | None:
        """The nearest unused trade at ``price`` around line ``i`` (for exactly ``amount``
        when given; tolerance 2 satoshi, the feed prints trade amounts as floats)."""
        index = self.by_price.get(price)
        if not index:
            return None
        lo = bisect_left(index, i - TRADE_WINDOW[0])
        hi = bisect_left(index, i + TRADE_WINDOW[1] + 1)
        ms = self.lines[i].ms
        best = None
        for j in index[lo:hi]:
            if j in self.used or abs(self.lines[j].ms - ms) > TRADE_WINDOW_MS:
                continue
            if amount is not None and abs(self.lines[j].data["amount"] - amount) > 2:
                continue
            if best is None or abs(j - i) < abs(best - i):
                best = j
        if best is not None:
            self.used.add(best)
        return best


class _Converter:
    """Applies the log to a book (``FeedReplayer``) while writing the normalized rows; the
    book decides who is an aggressor and is what the snapshots are compared with."""

    def __init__(self, lines: list[Line], symbol: str, keep_mismatches: int) -> None:
        self.lines = lines
        self.replayer = FeedReplayer(OrderBook(symbol))
        self.book = self.replayer.book
        self.rows: list[Row] = []
        self.check = BitstampCheck()
        self.trades = _Trades(lines)
        self.pending: dict[int, list[int]] = {}  # aggressor id -> [side, price, amount, ms]
        self.ts = 0
        self.keep = keep_mismatches
        self.changed_at: dict[tuple[int, int], int] = {}  # (side, price) -> last event ns
        self.side_ok = {BID: True, ASK: True}  # the last snapshot's comparison, per side

    # ------------------------------------------------------------------ writing events
    def emit(self, kind: int, oid: int, qty: int, price: int, side: int, syn: bool = False) -> None:
        self.rows.append((self.ts, kind, oid, qty, price, side, syn))
        self.replayer.apply(kind, oid, qty, price, side)
        if not syn:
            self.changed_at[(side, price)] = self.ts

    def crosses(self, side: int, price: int) -> bool:
        bid, ask = self.book.best_prices()
        if side == BID:
            return ask is not None and price >= ask
        return bid is not None and price <= bid

    # ------------------------------------------------------------------ the opening book
    def seed(self, early: dict[int, list[int]], snap: dict[str, list[tuple[int, int]]]) -> None:
        """The first snapshot's levels: known orders first (in the order they came), the rest
        of each level anonymous; known orders deeper than the snapshot shows rest too."""
        check = self.check
        for side, key in ((BID, "bids"), (ASK, "asks")):
            levels = dict(snap[key])
            deepest = snap[key][-1][0] if len(snap[key]) >= SNAPSHOT_LEVELS else None
            known: dict[int, list[tuple[int, int]]] = {}
            for oid, (o_side, price, amount) in early.items():
                if o_side != side or amount <= 0:
                    continue
                beyond = deepest is not None and (
                    price < deepest if side == BID else price > deepest
                )
                if beyond:
                    self.emit(ADD, oid, amount, price, side, True)
                    check.seeded_orders += 1
                elif price in levels:
                    known.setdefault(price, []).append((oid, amount))
            for price, qty in snap[key]:
                left = qty
                for oid, amount in known.get(price, []):
                    if amount <= left:
                        self.emit(ADD, oid, amount, price, side, True)
                        check.seeded_orders += 1
                        left -= amount
                if left > 0:
                    self.emit(ADD, self.book.mint_id(), left, price, side, True)
                    check.seeded_anonymous += 1

    # ------------------------------------------------------------------ aggressors
    def flush(self, ms: int | None, *, over: bool = False, keep: int | None = None) -> None:
        """Add what is left of aggressors whose sweep is over: ``over`` (another order was
        created, a snapshot came), idle for ``SWEEP_MS``, or the end of the log (``ms`` None).

        One that would still cross the book waits for the makers' decreases up to
        ``CROSS_WAIT_MS``, then is dropped (``crossed_dropped``): the venue never rests a
        crossed book, and which side is stale is not known here; the next snapshot's resync
        restores whatever really rests."""
        check = self.check
        for oid in list(self.pending):
            side, price, amount, last = self.pending[oid]
            idle = SWEEP_MS if ms is None else ms - last
            if oid == keep or (not over and idle < SWEEP_MS):
                continue
            if amount > 0 and self.crosses(side, price):
                if ms is not None and idle < CROSS_WAIT_MS:
                    continue
                check.crossed_dropped += 1
                del self.pending[oid]
                continue
            del self.pending[oid]
            if amount > 0:
                check.aggressors_rested += 1
                self.emit(ADD, oid, amount, price, side)

    def anonymous_qty(self, side: int, price: int) -> int:
        """What the anonymous liquidity (orders resting before the feed) holds at a level."""
        return sum(q for o, q in self.book.orders_at(side, price) if o < 0)

    def unknown(self, kind: int, oid: int, qty: int, price: int, side: int) -> None:
        """A delete or fill of an order resting before the feed began: taken from the
        anonymous liquidity at its level, as far as that holds it. The rest was deeper than any
        snapshot the book was seeded or resynced from: our book never held it, so nothing is
        written for it (``unseen_qty``) rather than a removal the replay cannot resolve."""
        take = min(qty, self.anonymous_qty(side, price))
        if take > 0:
            self.emit(kind, oid, take, price, side)
        self.check.unseen_qty += qty - take

    # ------------------------------------------------------------------ order events
    def created(self, i: int, d: dict[str, Any]) -> None:
        oid, side, price, amount = d["id"], d["side"], d["price"], d["amount"]
        if oid in self.book or oid in self.pending:
            self.check.duplicate_creates += 1
            return
        if amount <= 0:
            return
        if self.crosses(side, price):
            self.check.aggressors += 1
            self.pending[oid] = [side, price, amount, self.lines[i].ms]
            return
        self.emit(ADD, oid, amount, price, side)

    def changed(self, i: int, d: dict[str, Any]) -> None:
        oid, side, price, amount = d["id"], d["side"], d["price"], d["amount"]
        check = self.check
        agg = self.pending.get(oid)
        if agg is not None:
            check.taker_qty += max(agg[2] - amount, 0)
            agg[1], agg[2], agg[3] = price, amount, self.lines[i].ms
            return
        if oid not in self.book:
            check.unknown_order_ids += 1
            j = self.trades.take(i, price, None)
            if j is not None:
                # a fill of an order resting before the feed: taken from the anonymous
                # liquidity at its price, for the trade's amount
                check.fills += 1
                self.unknown(EXECUTE, oid, self.lines[j].data["amount"], price, side)
            return
        o_side, o_price, have = self.book.order(oid)
        if price != o_price or amount > have:
            check.requeued += 1
            self.emit(DELETE, oid, have, o_price, int(o_side))
            if amount > 0:
                if self.crosses(side, price):
                    check.aggressors += 1
                    self.pending[oid] = [side, price, amount, self.lines[i].ms]
                else:
                    self.emit(ADD, oid, amount, price, side)
            return
        drop = have - amount
        if drop <= 0:
            return
        if self.trades.take(i, price, drop) is not None:
            check.fills += 1
            self.emit(EXECUTE, oid, drop, price, int(o_side))
        else:
            check.partial_cancels += 1
            self.emit(CANCEL if amount > 0 else DELETE, oid, drop, price, int(o_side))

    def deleted(self, i: int, d: dict[str, Any]) -> None:
        oid, side, price, amount = d["id"], d["side"], d["price"], d["amount"]
        check = self.check
        if self.pending.pop(oid, None) is not None:
            return  # an aggressor swept to the end, or cancelled what was left: nothing rested
        if oid in self.book:
            o_side, o_price, have = self.book.order(oid)
            if amount == 0:
                j = self.trades.take(i, o_price, have)
                if j is None:
                    j = self.trades.take(i, o_price, None)
                if j is not None:
                    check.fills += 1
                    self.emit(EXECUTE, oid, have, o_price, int(o_side))
                    return
                check.fills_unconfirmed += 1
            self.emit(DELETE, oid, have, o_price, int(o_side))
            return
        check.unknown_order_ids += 1
        if amount > 0:
            self.unknown(DELETE, oid, amount, price, side)
            return
        j = self.trades.take(i, price, None)
        if j is None:
            check.fills_unconfirmed += 1
            return
        check.fills += 1
        self.unknown(EXECUTE, oid, self.lines[j].data["amount"], price, side)

    # ------------------------------------------------------------------ reconciliation
    def compare(self, i: int, snap: dict[str, list[tuple[int, int]]]) -> None:
        check = self.check
        check.snapshots += 1
        book = self.book
        bids = book.depth(BID, SNAPSHOT_LEVELS)
        asks = book.depth(ASK, SNAPSHOT_LEVELS)
        want_b, want_a = snap["bids"], snap["asks"]
        n_b, n_a = len(want_b), len(want_a)
        # a side is right when the levels the snapshot shows are ours, and when it shows
        # fewer than 20, when we have no more than it shows
        self.side_ok = {
            BID: bids[:n_b] == want_b and (n_b >= SNAPSHOT_LEVELS or len(bids) == n_b),
            ASK: asks[:n_a] == want_a and (n_a >= SNAPSHOT_LEVELS or len(asks) == n_a),
        }
        full = bids[:n_b] == want_b and asks[:n_a] == want_a
        touch = bids[:1] == want_b[:1] and asks[:1] == want_a[:1]
        touch_px = [p for p, _ in bids[:1]] == [p for p, _ in want_b[:1]] and [
            p for p, _ in asks[:1]
        ] == [p for p, _ in want_a[:1]]
        check.snapshots_matched += full
        check.snapshots_touch_matched += touch
        check.snapshots_touch_price_matched += touch_px
        bid, ask = book.best_prices()
        if bid is not None and ask is not None and bid >= ask:
            check.snapshots_crossed += 1
        if not full and len(check.first_mismatches) < self.keep:
            check.first_mismatches.append(
                {
                    "line": i,
                    "ms": self.lines[i].ms,
                    "expected_touch": [want_b[:1], want_a[:1]],
                    "actual_touch": [bids[:1], asks[:1]],
                }
            )

    def correct(self, i: int, snap: dict[str, list[tuple[int, int]]]) -> None:
        """Resync the levels a snapshot shows: what the book lacks is added as anonymous
        liquidity, what the venue no longer shows is removed (anonymous orders first, then
        the oldest), all as synthetic events. Levels with an order event within
        ``RESYNC_QUIET_MS`` either side of the snapshot are left alone: the snapshot and the
        order events are not printed in one sequence, so such a level may be in flight."""
        check = self.check
        book = self.book
        ms = self.lines[i].ms
        quiet = RESYNC_QUIET_MS * 1_000_000
        if all(self.side_ok.values()):
            return
        busy = {
            (line.data["side"], line.data["price"])
            for line in self.lines[i + 1 : i + 1 + RESYNC_LOOKAHEAD]
            if line.event in _ORDER_EVENTS and line.ms - ms <= RESYNC_QUIET_MS
        }
        adds: list[tuple[int, int, int]] = []  # removals on both sides first, then these
        for side, key in ((BID, "bids"), (ASK, "asks")):
            levels = dict(snap[key])
            if not levels or self.side_ok[side]:
                continue
            edge = snap[key][-1][0] if len(snap[key]) >= SNAPSHOT_LEVELS else None
            ours = set()
            for level in book.iter_levels(side):
                if edge is not None and (level.price < edge if side == BID else level.price > edge):
                    break
                ours.add(level.price)
            for price in sorted(ours | set(levels)):
                if (side, price) in busy or self.ts - self.changed_at.get(
                    (side, price), -quiet
                ) < quiet:
                    continue
                level = book.level(side, price)
                have = level.qty if level is not None else 0
                want = levels.get(price, 0)
                if want > have:
                    adds.append((side, price, want - have))
                elif have > want:
                    check.resync_removed_qty += have - want
                    check.resync_levels += 1
                    excess = have - want
                    orders = sorted(book.orders_at(side, price), key=lambda o: (o[0] >= 0, o[0]))
                    for oid, qty in orders:
                        if excess <= 0:
                            break
                        take = min(qty, excess)
                        kind = DELETE if take == qty else CANCEL
                        self.emit(kind, oid, take, price, side, True)
                        excess -= take
        for side, price, qty in adds:
            if self.crosses(side, price):
                continue  # our other side is in flight there: the next snapshot settles it
            self.emit(ADD, book.mint_id(), qty, price, side, True)
            check.resync_added_qty += qty
            check.resync_levels += 1


def load_bitstamp(
    path: str | Path,
    *,
    symbol: str = "BTCUSD",
    limit: int | None = None,
    keep_mismatches: int = 5,
    resync: bool = True,
) -> BitstampFeed:
    """Convert a Bitstamp live-orders log (plain, .bz2 or .gz) into normalized events; the
    first ``limit`` lines only when given."""
    lines, bad = read_lines(path, limit=limit)
    if not lines:
        raise BitstampError(f"{path}: no Bitstamp event in it ({bad} malformed line(s))")
    conv = _Converter(lines, symbol, keep_mismatches)
    check = conv.check
    check.lines = len(lines) + bad
    check.malformed_lines = bad
    check.trades = sum(1 for line in lines if line.event == "trade")
    early: dict[int, list[int]] | None = {}
    for i, line in enumerate(lines):
        event, d = line.event, line.data
        conv.ts = line.ms * 1_000_000
        if early is not None:
            if event == "order_book":
                conv.seed(early, d)
                early = None
                continue
            check.before_first_snapshot += 1
            if event in ("order_created", "order_changed"):
                early[d["id"]] = [d["side"], d["price"], d["amount"]]
            elif event == "order_deleted":
                early.pop(d["id"], None)
            continue
        if conv.pending:
            new = event in ("order_created", "order_book")
            conv.flush(line.ms, over=new, keep=d.get("id") if event == "order_created" else None)
        if event == "order_created":
            conv.created(i, d)
        elif event == "order_changed":
            conv.changed(i, d)
        elif event == "order_deleted":
            conv.deleted(i, d)
        elif event == "order_book":
            conv.compare(i, d)
            if resync:
                conv.correct(i, d)
    conv.flush(None)
    check.trades_unmatched = check.trades - len(conv.trades.used)
    frame = frame_from_rows(conv.rows, symbol)
    return BitstampFeed(frame, instrument(symbol), check, conv.replayer.stats.as_dict(), str(path))


def check_bitstamp(feed: BitstampFeed) -> dict[str, Any]:
    """The reconciliation figures of a converted log, for ``book-check``."""
    c = feed.check
    n = c.snapshots
    return {
        "format": "bitstamp",
        "instrument": feed.instrument.symbol,
        "events": len(feed.frame),
        "synthetic": int(np.sum(feed.frame["synthetic"].to_numpy())),
        "lines": c.lines,
        "malformed_rows": c.malformed_lines,
        "snapshots": n,
        "match": c.snapshots_matched / n if n else None,
        "best_level_match": c.snapshots_touch_matched / n if n else None,
        "touch_price_match": c.snapshots_touch_price_matched / n if n else None,
        "crossed_snapshots": c.snapshots_crossed,
        "unknown_order_ids": c.unknown_order_ids,
        "unresolved_qty": feed.replay.get("unresolved_qty", 0),
        "unseen_qty": c.unseen_qty,
        "crossed_books": feed.replay.get("crossed_books", 0),
        "trades": c.trades,
        "trades_unmatched": c.trades_unmatched,
        "check": c.as_dict(),
        "stats": feed.replay,
        "instrument_meta": feed.instrument.as_dict(),
    }
