"""The normalized market-by-order event format: any venue's feed, one event per row.

Columns (JSONL: one object per line with these keys; Parquet: these columns):

============  =======  =============================================================
column        type     meaning
============  =======  =============================================================
ts_ns         int64    event time, nanoseconds (LOBSTER: since midnight, exchange time)
instrument    string   symbol; the Kafka key of the event
kind          string   ``add`` | ``cancel`` (partial) | ``delete`` | ``execute`` (visible)
                       | ``execute_hidden`` | ``cross`` | ``halt``
order_id      int64    venue order id; negative ids are anonymous liquidity (see below)
side          string   ``bid`` | ``ask``: side of the resting order the event refers to
price         int64    price in the venue's integer units (LOBSTER: USD x 10,000)
qty           int64    shares added (add), removed (cancel, delete) or traded (execute)
seq           int64    position in the instrument's stream, strictly increasing
synthetic     bool     made by a reconciliation policy, not printed by the venue
============  =======  =============================================================

Semantics are those of ``simulator.replay.FeedReplayer``: an ``execute`` of a resting order is
a trade initiated by the other side; a ``cancel``/``delete``/``execute`` of an id the book does
not hold is resolved against anonymous liquidity at that side and price.

Instrument metadata (``simulator.types.Instrument``: tick, lot, price and quantity scales,
session hours, venue) travels beside the events as ``OUT.meta.json`` (``write_events`` with an
instrument, ``read_metadata``), so later stages read the venue's tick instead of assuming one.

A LOBSTER level-N file is converted with its reconciliation written out as synthetic events:
the opening book as anonymous ``add`` events, liquidity entering the N levels from deeper in the
book as anonymous ``add`` events, orders falling beyond level N as ``delete`` events, and,
after an integrity fault (a damaged file), the resync from the vendor's row (``delete`` and
anonymous ``add`` events, ``simulator.replay.FeedReplayer.resync``). A
consumer that replays the converted stream with plain book semantics therefore reproduces the
vendor's book row for row, without the orderbook file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.lobster import FeedError, LobsterDay, Messages
from simulator.types import BookEvent, EventKind, Instrument, Side

KIND_NAMES = {
    EventKind.ADD: "add",
    EventKind.CANCEL: "cancel",
    EventKind.DELETE: "delete",
    EventKind.EXECUTE: "execute",
    EventKind.EXECUTE_HIDDEN: "execute_hidden",
    EventKind.CROSS: "cross",
    EventKind.HALT: "halt",
}
KINDS = {name: kind for kind, name in KIND_NAMES.items()}
SIDE_NAMES = {Side.BID: "bid", Side.ASK: "ask"}
SIDES = {name: side for side, name in SIDE_NAMES.items()}
COLUMNS = ["ts_ns", "instrument", "kind", "order_id", "side", "price", "qty", "seq", "synthetic"]
_INT_FIELDS = ("ts_ns", "order_id", "price", "qty", "seq")


class EventFormatError(FeedError):
    """A normalized event (or file) does not follow the format."""


def event_to_dict(event: BookEvent) -> dict[str, Any]:
    return {
        "ts_ns": event.ts_ns,
        "instrument": event.instrument,
        "kind": KIND_NAMES[event.kind],
        "order_id": event.order_id,
        "side": SIDE_NAMES[event.side],
        "price": event.price,
        "qty": event.qty,
        "seq": event.seq,
        "synthetic": event.synthetic,
    }


def event_from_dict(data: Any) -> BookEvent:
    """Validate one decoded event; raises ``EventFormatError`` saying what is wrong."""
    if not isinstance(data, Mapping):
        raise EventFormatError(f"event must be an object, got {type(data).__name__}")
    missing = [c for c in COLUMNS if c not in data and c != "synthetic"]
    if missing:
        raise EventFormatError(f"event lacks {', '.join(missing)}")
    values: dict[str, int] = {}
    for name in _INT_FIELDS:
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventFormatError(f"{name} must be an integer, got {value!r}")
        values[name] = value
    kind = KINDS.get(data["kind"])
    if kind is None:
        raise EventFormatError(f"unknown kind {data['kind']!r}")
    side = SIDES.get(data["side"])
    if side is None:
        raise EventFormatError(f"unknown side {data['side']!r}")
    instrument = data["instrument"]
    if not isinstance(instrument, str) or not instrument:
        raise EventFormatError("instrument must be a non-empty string")
    synthetic = data.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise EventFormatError(f"synthetic must be a boolean, got {synthetic!r}")
    if values["qty"] < 0 or values["ts_ns"] < 0:
        raise EventFormatError("qty and ts_ns must not be negative")
    if kind == EventKind.ADD and values["qty"] == 0:
        raise EventFormatError("an add must have a positive qty")
    return BookEvent(
        values["ts_ns"],
        kind,
        values["order_id"],
        values["qty"],
        values["price"],
        side,
        instrument,
        values["seq"],
        synthetic,
    )


# ---------------------------------------------------------------------- frames and files
def lobster_to_frame(day: LobsterDay, *, reconcile: bool = True) -> pd.DataFrame:
    """Normalized events of a LOBSTER day, with its reconciliation as synthetic events."""
    # Local import: replay depends on this module's sibling, not the other way round.
    from simulator.book import OrderBook
    from simulator.replay import FeedReplayer, seed_from_first_row

    m = day.messages
    if not reconcile or day.orderbook is None:
        frame = _frame(
            m.ts_ns, m.kind, m.order_id, m.side, m.price, m.qty, np.zeros(len(m), bool), day.symbol
        )
        return frame
    replayer = FeedReplayer(OrderBook(day.symbol), record_synthetic=True)
    stats = replayer.stats
    seed_from_first_row(replayer, day)
    synthetic = replayer.synthetic
    assert synthetic is not None
    rows: list[tuple[int, int, int, int, int, int, bool]] = []
    t0 = int(m.ts_ns[0]) if len(m) else 0
    rows.extend((t0, k, o, q, p, s, True) for k, o, q, p, s in synthetic)
    synthetic.clear()
    levels = day.levels
    book_rows = day.orderbook
    for i, (t, k, o, q, p, s) in enumerate(
        zip(
            m.ts_ns.tolist(),
            m.kind.tolist(),
            m.order_id.tolist(),
            m.qty.tolist(),
            m.price.tolist(),
            m.side.tolist(),
            strict=True,
        )
    ):
        faults = stats.integrity_faults
        replayer.apply(k, o, q, p, s)
        rows.append((t, k, o, q, p, s, False))
        replayer.reconcile_depth(book_rows[i], levels)
        if stats.integrity_faults > faults:
            # the vendor's row repairs what the fault broke, written out like the depth policy
            replayer.resync_row(book_rows[i], levels)
        if synthetic:
            rows.extend((t, sk, so, sq, sp, ss, True) for sk, so, sq, sp, ss in synthetic)
            synthetic.clear()
    return frame_from_rows(rows, day.symbol)


def frame_from_rows(
    rows: list[tuple[int, int, int, int, int, int, bool]], instrument: str
) -> pd.DataFrame:
    """A normalized frame from ``(ts_ns, kind, order_id, qty, price, side, synthetic)`` rows
    (kind and side in ``EventKind``/``Side`` values), in feed order: what the venue adapters
    build."""
    cols = np.asarray([r[:6] for r in rows], dtype=np.int64).reshape(-1, 6)
    return _frame(
        cols[:, 0],
        cols[:, 1],
        cols[:, 2],
        cols[:, 5],
        cols[:, 4],
        cols[:, 3],
        np.asarray([r[6] for r in rows], dtype=bool),
        instrument,
    )


# How often a LOBSTER day's book rows stand in for the feed's snapshots (a live feed sends one
# every few seconds; a fault leaves the book suspect until the next one)
SNAPSHOT_EVERY_NS = 10 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The venue's book at a point of its feed: ``depth`` levels per side (``price -> qty``),
    to apply before the event at ``position`` of the feed's frame."""

    position: int
    ts_ns: int
    depth: int
    bids: dict[int, int]
    asks: dict[int, int]


def lobster_snapshots(
    day: LobsterDay, frame: pd.DataFrame, every_ns: int = SNAPSHOT_EVERY_NS
) -> list[BookSnapshot]:
    """The book a LOBSTER day shows at the last message of every ``every_ns``, as a feed's
    periodic snapshot: each applies before the next message's row of ``frame`` (after the
    message's own reconciliation events). ``frame`` is the day's ``lobster_to_frame``."""
    from simulator.replay import row_levels

    rows = day.orderbook
    if rows is None or len(day.messages) == 0:
        return []
    ts = day.messages.ts_ns
    bucket = ts // every_ns
    last = np.flatnonzero(np.append(bucket[1:] != bucket[:-1], True))  # last message of each
    real = np.flatnonzero(~frame["synthetic"].to_numpy(bool))  # frame row of each message
    if len(real) != len(ts):
        raise ValueError("the frame is not this day's converted events")
    nxt = np.append(real[1:], len(frame))
    out = []
    for i in last.tolist():
        bids, asks = row_levels(rows[i])
        out.append(BookSnapshot(int(nxt[i]), int(ts[i]), day.levels, bids, asks))
    return out


def _frame(
    ts: np.ndarray,
    kind: np.ndarray,
    order_id: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    qty: np.ndarray,
    synthetic: np.ndarray,
    instrument: str,
) -> pd.DataFrame:
    kind_names = np.array([""] + [KIND_NAMES[EventKind(k)] for k in range(1, 8)], dtype=object)
    return pd.DataFrame(
        {
            "ts_ns": np.asarray(ts, dtype=np.int64),
            "instrument": instrument,
            "kind": kind_names[np.asarray(kind, dtype=np.int64)],
            "order_id": np.asarray(order_id, dtype=np.int64),
            "side": np.where(np.asarray(side) > 0, "bid", "ask"),
            "price": np.asarray(price, dtype=np.int64),
            "qty": np.asarray(qty, dtype=np.int64),
            "seq": np.arange(len(ts), dtype=np.int64),
            "synthetic": np.asarray(synthetic, dtype=bool),
        },
        columns=COLUMNS,
    )


def metadata_path(path: str | Path) -> Path:
    """Where the instrument metadata of an events file lives: ``OUT.meta.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def write_metadata(instrument: Instrument, path: str | Path) -> Path:
    """Write the instrument's metadata beside the events file ``path``; returns where."""
    out = metadata_path(path)
    out.write_text(json.dumps(instrument.as_dict(), indent=1) + "\n", encoding="utf-8")
    return out


def read_metadata(path: str | Path) -> Instrument | None:
    """The instrument metadata written beside an events file, or None when there is none
    (a file converted before metadata existed: the caller falls back to its defaults)."""
    meta = metadata_path(path)
    if not meta.exists():
        return None
    try:
        return Instrument.from_dict(json.loads(meta.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise EventFormatError(f"{meta}: unreadable instrument metadata ({exc})") from exc


def write_events(
    frame: pd.DataFrame, path: str | Path, instrument: Instrument | None = None
) -> None:
    """Write a normalized frame as Parquet (``.parquet``) or JSONL (anything else), with the
    instrument's metadata beside it when given (``metadata_path``)."""
    path = Path(path)
    if instrument is not None:
        write_metadata(instrument, path)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
        return
    with path.open("w", encoding="utf-8") as fh:
        for rec in frame.to_dict(orient="records"):
            fh.write(json.dumps({k: _plain(v) for k, v in rec.items()}, separators=(",", ":")))
            fh.write("\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_events(path: str | Path) -> tuple[pd.DataFrame, int]:
    """Read a normalized file; returns the valid events and the count of malformed rows skipped."""
    path = Path(path)
    if not path.exists():
        raise EventFormatError(f"no such file: {path}")
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a bad file
            raise EventFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
        return _validate_frame(frame, path)
    good: list[dict[str, Any]] = []
    bad = 0
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                event = event_from_dict(json.loads(line))
            except (json.JSONDecodeError, EventFormatError):
                bad += 1
                continue
            good.append(event_to_dict(event))
    if not good and bad:
        raise EventFormatError(f"{path}: no valid normalized event in {bad} line(s)")
    frame = pd.DataFrame(good, columns=COLUMNS)
    return frame.astype({c: "int64" for c in _INT_FIELDS} | {"synthetic": bool}), bad


def _validate_frame(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, int]:
    missing = [c for c in COLUMNS if c not in frame.columns and c != "synthetic"]
    if missing:
        raise EventFormatError(f"{path}: missing column(s) {', '.join(missing)}")
    if "synthetic" not in frame.columns:
        frame = frame.assign(synthetic=False)
    ok = frame["kind"].isin(list(KINDS)) & frame["side"].isin(list(SIDES))
    for col in _INT_FIELDS:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        ok &= numeric.notna()
    ok &= pd.to_numeric(frame["qty"], errors="coerce").fillna(-1) >= 0
    ok &= frame["instrument"].astype(str).str.len() > 0
    bad = int((~ok).sum())
    frame = frame[ok].astype({c: "int64" for c in _INT_FIELDS} | {"synthetic": bool})
    return frame[COLUMNS].reset_index(drop=True), bad


def to_messages(frame: pd.DataFrame) -> Messages:
    """Columns of one instrument's events in LOBSTER codes (for ``FeedReplayer.replay``)."""
    return Messages(
        ts_ns=frame["ts_ns"].to_numpy(np.int64),
        kind=frame["kind"].map({n: int(k) for n, k in KINDS.items()}).to_numpy(np.int8),
        order_id=frame["order_id"].to_numpy(np.int64),
        qty=frame["qty"].to_numpy(np.int64),
        price=frame["price"].to_numpy(np.int64),
        side=frame["side"].map({n: int(s) for n, s in SIDES.items()}).to_numpy(np.int8),
    )


def iter_events(frame: pd.DataFrame) -> Iterator[BookEvent]:
    kinds = {n: k for n, k in KINDS.items()}
    sides = {n: s for n, s in SIDES.items()}
    for t, inst, k, o, s, p, q, seq, syn in frame[COLUMNS].itertuples(index=False, name=None):
        yield BookEvent(int(t), kinds[k], int(o), int(q), int(p), sides[s], inst, int(seq), syn)
