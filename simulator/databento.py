"""Databento market-by-order (DBN, schema ``mbo``) into normalized book events.

Records are decoded with ``databento_dbn`` (a ``.dbn.zst`` file is decompressed with
``zstandard`` first). Mapping (the book semantics of ``simulator.replay.FeedReplayer``):

- ``A`` add: an ``add``. Records flagged ``F_SNAPSHOT`` (the resting orders when the file
  starts) are written as ``synthetic`` adds: they seed the book, they are not order flow.
- ``C`` cancel: ``size`` is what leaves the order; the rest of the order stays (``cancel``) or
  nothing is left (``delete``).
- ``M`` modify: a new price, or a larger size, sends the order to the back of the queue
  (``delete`` + ``add`` under the same id); a smaller size at the same price keeps its
  priority (``cancel`` of the difference).
- ``F`` fill: an ``execute`` of the resting order. On CME the venue then prints a ``C`` or
  ``M`` that takes the filled quantity out of its own book; the adapter keeps the venue's size
  of every order and writes only what that ``C``/``M`` removes beyond the fills already
  written, so a fill is never counted twice. A fill larger than the displayed size (an
  iceberg's reserve) writes the excess as ``execute_hidden``; an ``M`` that raises the size
  above what fills left (an iceberg's refill) queues the order anew.
- ``T`` trade: the aggressor's print. It changes no book (the ``F`` records do), so no event;
  it is used by the reconciliation (trade price against the touch).
- ``R`` clear: every resting order is deleted (``synthetic`` deletes).

Prices are fixed point at 1e-9; they are written in 1e-4 units (``PRICE_SCALE``: an ES tick of
0.25 is 2,500 units, the same scale as LOBSTER's USD x 10,000). Event times are ``ts_recv``
(nanoseconds since the epoch), the order the vendor sorts by; a time that goes backwards is
held at the last one and counted.

Malformed records (unknown action or side, undefined or off-grid price, a record shorter than
its header says, another record type) are skipped and counted, never raised.

A file of several instruments is converted per instrument (``load_databento_all``). Instrument
definition records, when present, give the symbol, tick and product; the session hours are the
venue's published schedule for the product (``simulator.venues``). Snapshot records whose
``ts_recv`` is the request's start (``F_BAD_TS_RECV``) are stamped with the instrument's first
live record, the time the snapshot's book holds from.
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.book import OrderBook
from simulator.lobster import FeedError
from simulator.normalized import frame_from_rows
from simulator.replay import FeedReplayer
from simulator.types import EventKind, Instrument, Side
from simulator.venues import CME_GLOBEX, cme_product

PRICE_SCALE = 10_000  # price units per index point (or currency unit)
_NANO_PER_UNIT = 1_000_000_000 // PRICE_SCALE
_UNDEF_PRICE = (1 << 63) - 1
_MBO_RTYPE = 0xA0
_DEFINITION_RTYPE = 0x13  # instrument definition: symbol, product, tick
_MAPPING_RTYPE = 0x16  # symbol mapping: instrument id -> symbol (live data)
_MBO_LENGTH = 56  # bytes of an MBO record (DBN versions 2 and 3)
F_LAST = 1 << 7  # the last record of the venue's packet: the book is consistent after it
F_TOB = 1 << 6
F_SNAPSHOT = 1 << 5  # part of a snapshot of the book, not a live event
F_MBP = 1 << 4
F_BAD_TS_RECV = 1 << 3  # ts_recv is not the time the record was received (a snapshot's start)
F_MAYBE_BAD_BOOK = 1 << 2  # the vendor lost packets: its book may be wrong until a snapshot

ADD, CANCEL, DELETE, EXECUTE, EXECUTE_HIDDEN = (
    int(EventKind.ADD),
    int(EventKind.CANCEL),
    int(EventKind.DELETE),
    int(EventKind.EXECUTE),
    int(EventKind.EXECUTE_HIDDEN),
)
_SIDES = {"B": int(Side.BID), "A": int(Side.ASK), "N": 0}
Row = tuple[int, int, int, int, int, int, bool]


class DatabentoError(FeedError):
    """A DBN file that cannot be read at all (missing, not DBN, not the ``mbo`` schema)."""


@dataclass(slots=True)
class DatabentoCheck:
    """What the conversion saw, and the reconciliation of the rebuilt book with what the
    venue's flags and trades allow (see ``check_databento``)."""

    records: int = 0
    snapshot_records: int = 0
    malformed_records: int = 0
    other_records: int = 0  # records of another type or instrument, skipped
    actions: dict[str, int] = field(default_factory=dict)
    unknown_order_ids: int = 0  # cancels and fills of ids the book does not hold
    modify_unknown: int = 0  # a modify of an unknown id, taken as an add
    duplicate_adds: int = 0
    requeued: int = 0  # modifies that lost priority (price change or size increase)
    fill_short: int = 0  # fills beyond the displayed size (iceberg): the rest is hidden
    venue_short: int = 0  # a C/M leaving the venue's order larger than what fills left ours
    ts_held: int = 0  # records whose ts_recv went backwards (held at the last time)
    bad_ts_recv: int = 0
    maybe_bad_book: int = 0
    last_records: int = 0  # F_LAST records after the snapshot: where the book must be sane
    crossed_at_last: int = 0
    crossed_at_last_preopen: int = 0  # of which before the first trade (an auction's book)
    snapshot_crossed: bool = False
    trades: int = 0
    trades_no_side: int = 0  # auction prints (side N)
    trade_at_touch: int = 0  # aggressor's price equals the opposite best price
    trade_through_touch: int = 0  # beyond it (a sweep's later levels print separately)
    trade_inside_touch: int = 0  # better than the book's touch: the book lacks that order
    trade_empty_side: int = 0
    first_trade_ns: int | None = None
    tick_units: int = 0  # the step every price in the file is a multiple of

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class DatabentoFeed:
    frame: pd.DataFrame
    instrument: Instrument
    check: DatabentoCheck
    replay: dict[str, int]
    source: str = ""
    instrument_id: int = 0
    definition: bool = False  # the metadata came from an instrument definition record

    @property
    def malformed(self) -> int:
        return self.check.malformed_records


def read_dbn_bytes(path: str | Path) -> bytes:
    """The DBN bytes of a file, zstd-decompressed when it is compressed."""
    path = Path(path)
    if not path.exists():
        raise DatabentoError(f"no such file: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatabentoError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if raw[:4] == b"\x28\xb5\x2f\xfd":  # zstd frame magic
        import zstandard

        try:
            with zstandard.ZstdDecompressor().stream_reader(raw) as reader:
                raw = reader.read()
        except zstandard.ZstdError as exc:
            raise DatabentoError(f"{path}: bad zstd data ({exc})") from exc
    if raw[:3] != b"DBN":
        raise DatabentoError(f"{path}: not a DBN file")
    return raw


def _split(raw: bytes, limit: int | None = None) -> tuple[bytes, bytes, int, int]:
    """(metadata bytes, record bytes, records of other types, malformed tail records).

    Records are walked by their length byte, so one corrupt record does not make the decoder
    refuse the whole file; only well-formed MBO records (the first ``limit``), instrument
    definitions and symbol mappings go to the decoder.
    """
    if len(raw) < 8:
        raise DatabentoError("truncated DBN header")
    (meta_len,) = struct.unpack_from("<I", raw, 4)
    start = 8 + meta_len
    if start > len(raw):
        raise DatabentoError("truncated DBN metadata")
    out = bytearray()
    other = bad = 0
    pos = start
    n = len(raw)
    mbo = 0
    while pos < n:
        length = raw[pos] * 4
        if length < 16 or pos + length > n:
            bad += 1  # a record we cannot delimit: the rest is unusable
            break
        rtype = raw[pos + 1]
        if rtype == _MBO_RTYPE and length == _MBO_LENGTH:
            mbo += 1
            if limit is not None and mbo > limit:
                break
            out += raw[pos : pos + length]
        elif rtype in (_DEFINITION_RTYPE, _MAPPING_RTYPE):
            out += raw[pos : pos + length]
        else:
            other += 1
        pos += length
    return raw[:start], bytes(out), other, bad


def decode_mbo(path: str | Path, *, limit: int | None = None) -> tuple[Any, list[Any], int, int]:
    """(metadata, records, other records, malformed records) of a DBN file: its MBO records
    (the first ``limit``), with its instrument definitions and symbol mappings among them."""
    import databento_dbn as dbn

    meta_bytes, body, other, bad = _split(read_dbn_bytes(path), limit)
    try:
        decoder = dbn.DBNDecoder()
        decoder.write(meta_bytes)
        decoded = decoder.decode()
        decoder.write(body)
        records = decoder.decode()
    except Exception as exc:  # the decoder raises DBNError and others for bad metadata
        raise DatabentoError(f"{path}: not a readable DBN file ({exc})") from exc
    metadata = decoded[0] if decoded else None
    schema = getattr(metadata, "schema", None)
    if schema is not None and str(getattr(schema, "value", schema)).lower() != "mbo":
        raise DatabentoError(f"{path}: schema {schema}, expected mbo")
    return metadata, records, other, bad


def _code(value: Any) -> str:
    """An action or side as its one-letter code (the decoder gives enums, or a str when the
    byte is not a known code)."""
    return str(getattr(value, "value", value))


def symbols_by_id(metadata: Any, records: list[Any]) -> dict[int, str]:
    """Each instrument id's symbol: from its definition record, else a symbol mapping record,
    else the metadata's mappings (historical files: ``{raw_symbol: [{"symbol": id}, ...]}``)."""
    out: dict[int, str] = {}
    mappings = getattr(metadata, "mappings", None) or {}
    if isinstance(mappings, dict):
        for raw, intervals in mappings.items():
            for interval in intervals or ():
                try:
                    out[int(interval["symbol"])] = str(raw)
                except (KeyError, TypeError, ValueError):
                    continue  # a mapping to a symbol, not an id: nothing to learn here
    # definitions last: they win over mappings
    for rtype, name in ((_MAPPING_RTYPE, "stype_in_symbol"), (_DEFINITION_RTYPE, "raw_symbol")):
        for r in records:
            symbol = str(getattr(r, name, "") or "")
            if int(getattr(r, "rtype", 0)) == rtype and symbol:
                out[int(r.instrument_id)] = symbol
    return out


def _symbol(metadata: Any, instrument_id: int, known: dict[int, str], ids: int) -> str:
    if instrument_id in known:
        return known[instrument_id]
    symbols = list(getattr(metadata, "symbols", None) or [])
    if ids == 1 and len(symbols) == 1 and symbols[0]:
        return str(symbols[0])
    return str(instrument_id)


def tick_for(symbol: str, price_gcd: int) -> int:
    """The instrument's tick without a definition: CME's for a known product (``ESH4``: root
    ``ES``, 0.25 = 2,500 units) when every price in the file sits on it, else the step all
    its prices share."""
    product = cme_product(symbol)
    if product is not None and price_gcd % product.tick_units == 0:
        return product.tick_units
    return max(price_gcd, 1)


def _definition_tick(definition: Any) -> int | None:
    """A definition's ``min_price_increment`` in price units (None when unset or finer)."""
    raw = int(getattr(definition, "min_price_increment", 0) or 0)
    if raw <= 0 or raw == _UNDEF_PRICE or raw % _NANO_PER_UNIT:
        return None
    return raw // _NANO_PER_UNIT


def instrument_for(
    symbol: str, dataset: str, tick_units: int, definition: Any = None
) -> Instrument:
    """Metadata of a DBN instrument. The tick and the product come from its instrument
    definition record when the file has one, else from the symbol; the session hours are the
    venue's published schedule for the product (``simulator.venues``: CME Globex futures
    17:00-16:00 Chicago time, Sunday to Friday)."""
    cme = dataset.upper().startswith("GLBX")
    tick = _definition_tick(definition) if definition is not None else None
    if tick is None:
        tick = tick_for(symbol, tick_units) if cme else max(tick_units, 1)
    product = None
    if cme:
        asset = str(getattr(definition, "asset", "") or "") if definition is not None else ""
        product = cme_product(asset) if asset else None
        product = product or cme_product(symbol)
    schedule = product.schedule if product is not None else (CME_GLOBEX if cme else None)
    if schedule is None:  # another dataset: no schedule known, so no session is assumed
        return Instrument(
            symbol,
            tick_size=tick,
            price_scale=PRICE_SCALE,
            price_band_bps=None,
            venue=dataset or "Databento",
            timezone="UTC",
            session_open="00:00",
            session_close="24:00",
            trade_days="Mon-Sun",
        )
    return Instrument(
        symbol,
        tick_size=tick,
        lot_size=1,
        price_scale=PRICE_SCALE,
        price_band_bps=None,  # CME's dynamic price limits are not modelled
        venue=f"{schedule.venue} ({dataset})",
        timezone=schedule.timezone,
        session_open=schedule.open,
        session_close=schedule.close,
        qty_scale=1,
        trade_days=schedule.trade_days,
    )


class _Converter:
    """Applies MBO records to a book (``FeedReplayer``) while writing the normalized rows."""

    def __init__(self, symbol: str) -> None:
        self.replayer = FeedReplayer(OrderBook(symbol))
        self.book = self.replayer.book
        self.rows: list[Row] = []
        self.check = DatabentoCheck()
        # the venue's view of each order: [side, price, size after its last A/C/M, filled
        # since then]
        self.venue: dict[int, list[int]] = {}
        self.ts = 0

    def emit(self, kind: int, oid: int, qty: int, price: int, side: int, syn: bool) -> None:
        self.rows.append((self.ts, kind, oid, qty, price, side, syn))
        self.replayer.apply(kind, oid, qty, price, side)

    def resting(self, oid: int) -> int:
        book = self.book
        return book.order(oid)[2] if oid in book else 0

    def record(self, action: str, side: int, price: int, size: int, oid: int, flags: int) -> None:
        check = self.check
        check.actions[action] = check.actions.get(action, 0) + 1
        snap = bool(flags & F_SNAPSHOT)
        if action == "A":
            if oid in self.venue:
                check.duplicate_adds += 1
                return
            self.venue[oid] = [side, price, size, 0]
            self.emit(ADD, oid, size, price, side, snap)
        elif action == "C":
            self.cancel(oid, size)
        elif action == "M":
            self.modify(oid, side, price, size, snap)
        elif action == "F":
            have = self.resting(oid)
            entry = self.venue.get(oid)
            if have == 0 or entry is None:
                check.unknown_order_ids += 1
                return
            o_side, o_price, _ = self.book.order(oid)
            shown = min(size, have)
            entry[3] += shown  # filled, until the venue's C or M takes it out of its book
            self.emit(EXECUTE, oid, shown, o_price, int(o_side), False)
            if size > have:
                # an iceberg filled beyond its displayed tranche: the rest was hidden
                check.fill_short += 1
                self.emit(EXECUTE_HIDDEN, oid, size - have, o_price, int(o_side), False)
        elif action == "T":
            self.trade(side, price)
        elif action == "R":
            for oid_ in list(self.book.order_ids()):
                o_side, o_price, qty = self.book.order(oid_)
                self.emit(DELETE, oid_, qty, o_price, int(o_side), True)
            self.venue.clear()

    def cancel(self, oid: int, size: int) -> None:
        entry = self.venue.get(oid)
        if entry is None:
            self.check.unknown_order_ids += 1
            return
        side, price, vsize, filled = entry
        # a C after fills first takes the filled quantity out (CME prints a full fill so)
        left = vsize - size
        filled = max(filled - size, 0)
        self._settle(oid, side, price, max(left - filled, 0))
        if left > 0:
            entry[2], entry[3] = left, filled
        else:
            del self.venue[oid]

    def _settle(self, oid: int, side: int, price: int, target: int) -> None:
        """Bring our order down to ``target``, the venue's size net of the fills already
        written (so a fill is not removed twice)."""
        have = self.resting(oid)
        if target == 0:
            if have:
                self.emit(DELETE, oid, have, price, side, False)
        elif have > target:
            self.emit(CANCEL, oid, have - target, price, side, False)
        elif have < target:
            self.check.venue_short += 1

    def modify(self, oid: int, side: int, price: int, size: int, snap: bool) -> None:
        entry = self.venue.get(oid)
        if entry is None:
            self.check.modify_unknown += 1
            if size > 0 and side:
                self.venue[oid] = [side, price, size, 0]
                self.emit(ADD, oid, size, price, side, snap)
            return
        o_side, o_price, o_size, filled = entry
        side = side or o_side
        if size <= 0:
            self._settle(oid, o_side, o_price, 0)
            del self.venue[oid]
            return
        # Against what is left after fills: more than that is a size increase or an iceberg's
        # refill, which CME queues behind the level like a new order.
        if price != o_price or size > o_size - filled or side != o_side:
            self.check.requeued += 1
            have = self.resting(oid)
            if have:
                self.emit(DELETE, oid, have, o_price, o_side, snap)
            self.emit(ADD, oid, size, price, side, snap)
        else:
            self._settle(oid, o_side, o_price, size)
        self.venue[oid] = [side, price, size, 0]

    def trade(self, side: int, price: int) -> None:
        check = self.check
        check.trades += 1
        if check.first_trade_ns is None:
            check.first_trade_ns = self.ts
        if side == 0:
            check.trades_no_side += 1
            return
        touch = self.book.best_ask if side > 0 else self.book.best_bid
        if touch is None:
            check.trade_empty_side += 1
        elif price == touch:
            check.trade_at_touch += 1
        elif (price > touch) == (side > 0):
            check.trade_through_touch += 1
        else:
            check.trade_inside_touch += 1

    def at_last(self) -> None:
        check = self.check
        check.last_records += 1
        bid, ask = self.book.best_prices()
        if bid is not None and ask is not None and bid >= ask:
            check.crossed_at_last += 1
            if check.first_trade_ns is None:
                check.crossed_at_last_preopen += 1


def load_databento_all(path: str | Path, *, limit: int | None = None) -> list[DatabentoFeed]:
    """Convert every instrument of a DBN MBO file into normalized events: one feed per
    instrument id, in the order the file first names them (``limit``: only the file's first
    MBO records). Records of a file's other types and malformed records are counted in each."""
    metadata, records, other, bad = decode_mbo(path, limit=limit)
    mbo = [r for r in records if int(getattr(r, "rtype", _MBO_RTYPE)) == _MBO_RTYPE]
    if not mbo and not bad:
        raise DatabentoError(f"{path}: no MBO records")
    by_id: dict[int, list[Any]] = {}
    for r in mbo:
        by_id.setdefault(int(r.instrument_id), []).append(r)
    definitions = {
        int(r.instrument_id): r for r in records if int(getattr(r, "rtype", 0)) == _DEFINITION_RTYPE
    }
    known = symbols_by_id(metadata, records)
    dataset = str(getattr(metadata, "dataset", "") or "")
    feeds = []
    for iid, own in (by_id or {0: []}).items():
        symbol = _symbol(metadata, iid, known, len(by_id))
        feed = _convert(own, symbol, dataset, definitions.get(iid), str(path), iid)
        check = feed.check
        check.other_records = other + len(mbo) - len(own)
        check.malformed_records += bad
        check.records = len(mbo) + other + bad
        feeds.append(feed)
    return feeds


def load_databento(
    path: str | Path, *, limit: int | None = None, instrument_id: int | str | None = None
) -> DatabentoFeed:
    """Convert one instrument of a DBN MBO file (``instrument_id``: its id or symbol; left
    None, the file must hold one instrument) into normalized events."""
    feeds = load_databento_all(path, limit=limit)
    if instrument_id is None:
        if len(feeds) > 1:
            names = ", ".join(f.instrument.symbol for f in feeds)
            raise DatabentoError(f"{path}: {len(feeds)} instruments ({names}); choose one")
        return feeds[0]
    return select_instrument(feeds, instrument_id, str(path))


def select_instrument(feeds: list[DatabentoFeed], wanted: int | str, where: str) -> DatabentoFeed:
    for feed in feeds:
        if str(wanted) in (feed.instrument.symbol, str(feed.instrument_id)):
            return feed
    names = ", ".join(f"{f.instrument.symbol} ({f.instrument_id})" for f in feeds)
    raise DatabentoError(f"{where}: no instrument {wanted}; the file holds {names}")


def _convert(
    records: list[Any], symbol: str, dataset: str, definition: Any, source: str, iid: int
) -> DatabentoFeed:
    """One instrument's MBO records, in file order, into its feed."""
    conv = _Converter(symbol)
    check = conv.check
    sides = _SIDES
    tick = 0
    in_snapshot = True
    stamped = 0  # rows of snapshot records whose ts_recv is the request's start, not a time
    for r in records:
        action = _code(r.action)
        side = sides.get(_code(r.side))
        raw_price = int(r.price)
        flags = int(r.flags)
        if (
            side is None
            or len(action) != 1
            or action not in "ACMFTRN"
            or (action == "A" and not side)
        ):
            check.malformed_records += 1
            continue
        if raw_price == _UNDEF_PRICE:
            if action not in "RTN":
                check.malformed_records += 1
                continue
            price = 0
        elif raw_price % _NANO_PER_UNIT:
            check.malformed_records += 1  # finer than the price unit chosen here
            continue
        else:
            price = raw_price // _NANO_PER_UNIT
            if action in "ACM" and price > 0:
                tick = math.gcd(tick, price)
        size = int(r.size)
        if size < 0 or (action in "AF" and size == 0):
            check.malformed_records += 1
            continue
        ts = int(r.ts_recv)
        snap = bool(flags & F_SNAPSHOT)
        if not snap and in_snapshot:
            in_snapshot = False
            bid, ask = conv.book.best_prices()
            check.snapshot_crossed = bid is not None and ask is not None and bid >= ask
            if stamped and ts > conv.ts:
                # the snapshot is the book when the live records start: stamped then, so
                # windows and trade dates follow the venue's time, not the request's
                conv.rows[:stamped] = [(ts, *row[1:]) for row in conv.rows[:stamped]]
                conv.ts = ts
        if ts < conv.ts:
            check.ts_held += 1
            ts = conv.ts
        conv.ts = ts
        if snap:
            check.snapshot_records += 1
        if flags & F_BAD_TS_RECV:
            check.bad_ts_recv += 1
        if flags & F_MAYBE_BAD_BOOK:
            check.maybe_bad_book += 1
        conv.record(action, side, price, size, int(r.order_id), flags)
        if snap and in_snapshot and flags & F_BAD_TS_RECV:
            stamped = len(conv.rows)
        if flags & F_LAST and not snap:
            conv.at_last()
    check.tick_units = tick
    instrument = instrument_for(symbol, dataset, tick, definition)
    frame = frame_from_rows(conv.rows, symbol)
    return DatabentoFeed(
        frame,
        instrument,
        check,
        conv.replayer.stats.as_dict(),
        source,
        iid,
        definition is not None,
    )


def check_databento(feed: DatabentoFeed) -> dict[str, Any]:
    """The reconciliation figures of a converted file, for ``book-check``.

    A DBN file publishes no book rows to compare with; what the venue does guarantee is that
    the book is consistent after every ``F_LAST`` record (uncrossed once trading runs; an
    auction's pre-open book may cross), that every cancel, modify and fill names an order the
    book holds (the snapshot seeded them all), and that an aggressor's trade prints at the
    opposite best price (the first level of a sweep) or beyond it (its later levels).
    """
    c = feed.check
    touched = c.trade_at_touch + c.trade_through_touch + c.trade_inside_touch
    continuous = c.last_records - c.crossed_at_last_preopen
    return {
        "format": "databento",
        "instrument": feed.instrument.symbol,
        "instrument_id": feed.instrument_id,
        "definition": feed.definition,
        "events": len(feed.frame),
        "synthetic": int(feed.frame["synthetic"].sum()),
        "records": c.records,
        "snapshot_records": c.snapshot_records,
        "malformed_rows": c.malformed_records,
        "last_records": c.last_records,
        "uncrossed_at_last": 1 - c.crossed_at_last / c.last_records if c.last_records else 1.0,
        "crossed_at_last": c.crossed_at_last,
        "crossed_at_last_preopen": c.crossed_at_last_preopen,
        "crossed_at_last_after_open": c.crossed_at_last - c.crossed_at_last_preopen,
        "uncrossed_after_open": (
            1 - (c.crossed_at_last - c.crossed_at_last_preopen) / continuous if continuous else 1.0
        ),
        "unknown_order_ids": c.unknown_order_ids + c.modify_unknown,
        "trades": c.trades,
        "trade_at_touch": c.trade_at_touch / touched if touched else None,
        "trade_through_touch": c.trade_through_touch,
        "trade_inside_touch": c.trade_inside_touch,
        "trades_no_side": c.trades_no_side,
        "check": c.as_dict(),
        "stats": feed.replay,
        "instrument_meta": feed.instrument.as_dict(),
    }
