"""Wire format of the closed-window topic (``{prefix}.windows``): a ``ClosedWindow`` as bytes.

Ingest workers close windows and publish them here (key = instrument); scorer workers decode
them and score them (``streams.scorer``). A record is everything ``decide_window`` reads:
both books (every resting order in queue order, and the book's id counter, so a fork mints the
same ids), the window's and the previous window's events, the real trajectory and facts, the
earlier windows' facts and the integrity flags. Scores of a decoded window are exactly those of
the original (``tests/streams/test_window_records.py``).

Version 2 adds the instrument's venue metadata (``simulator.types.Instrument`` as a dict, or
null when the feed sent none), so a scorer builds the scorer of the instrument's venue as the
ingest worker's ``both`` role would. Version 3 adds the window's session (open, close), which
places it in its time-of-day bucket. Older records are still read (no metadata, no session).

Layout::

    b"SURVWIN" + version (1 byte) + zlib( u32 header length + header JSON + array bytes )

The header holds the scalars and a directory of numpy arrays (name, dtype, shape, offset). No
pickle: a record on a topic is data, never code. A reader refuses a version it does not know
(``WindowRecordError``); a new field is a new version, and readers learn it before writers
send it.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from simulator.book import OrderBook
from simulator.trajectory import Trajectory
from simulator.types import BookEvent, EventKind, Instrument, Side
from surveillance.detection.pipeline import ClosedWindow

MAGIC = b"SURVWIN"
VERSION = 3
SUPPORTED_VERSIONS = frozenset({1, 2, 3})
_LEN = struct.Struct("<I")
# zlib level 1: a window compresses about 4x at level 1 and the ingest worker stays light
_LEVEL = 1


class WindowRecordError(ValueError):
    """A closed-window record that cannot be decoded (not one, corrupt, or a version this
    reader does not know); ``reason`` is a short category for the dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Arrays:
    """Collects arrays while encoding (name -> directory entry, bytes appended)."""

    def __init__(self) -> None:
        self.directory: list[list[Any]] = []
        self.chunks: list[bytes] = []
        self.size = 0

    def put(self, name: str, array: np.ndarray) -> str:
        data = np.ascontiguousarray(array)
        raw = data.tobytes()
        self.directory.append([name, data.dtype.str, list(data.shape), self.size, len(raw)])
        self.chunks.append(raw)
        self.size += len(raw)
        return name


def _read_arrays(directory: Sequence[Sequence[Any]], blob: memoryview) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, dtype, shape, offset, nbytes in directory:
        if offset + nbytes > len(blob):
            raise WindowRecordError("corrupt", f"array {name} runs past the record")
        array = np.frombuffer(blob[offset : offset + nbytes], dtype=np.dtype(dtype))
        out[name] = array.reshape(shape).copy()  # own memory: the blob is freed after decoding
    return out


# ------------------------------------------------------------------------------ parts
def _book(book: OrderBook | None, name: str, arrays: _Arrays) -> dict[str, Any] | None:
    if book is None:
        return None
    rows = [
        (side, level.price, order_id, qty)
        for side in (1, -1)
        for level in book.iter_levels(side)
        for order_id, qty in level.orders.items()
    ]
    table = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    return {"symbol": book.symbol, "next_id": book.next_id, "orders": arrays.put(name, table)}


def _unbook(meta: Mapping[str, Any] | None, arrays: Mapping[str, np.ndarray]) -> OrderBook | None:
    if meta is None:
        return None
    table = arrays[meta["orders"]]
    orders = ((int(s), int(p), int(o), int(q)) for s, p, o, q in table)
    return OrderBook.restore(meta["symbol"], orders, int(meta["next_id"]))


_EVENT_COLUMNS = ("ts_ns", "kind", "order_id", "qty", "price", "side", "seq")


def _events(events: Sequence[BookEvent], name: str, arrays: _Arrays) -> dict[str, Any]:
    names = sorted({e.instrument for e in events})
    index = {n: i for i, n in enumerate(names)}
    table = np.array(
        [(e.ts_ns, e.kind, e.order_id, e.qty, e.price, e.side, e.seq) for e in events],
        dtype=np.int64,
    ).reshape(len(events), len(_EVENT_COLUMNS))
    flags = np.array([(index[e.instrument], e.synthetic) for e in events], dtype=np.int32).reshape(
        len(events), 2
    )
    return {
        "instruments": names,
        "table": arrays.put(f"{name}.table", table),
        "flags": arrays.put(f"{name}.flags", flags),
    }


def _unevents(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> tuple[BookEvent, ...]:
    names = meta["instruments"]
    kinds = {int(k): k for k in EventKind}
    sides = {int(s): s for s in Side}
    table, flags = arrays[meta["table"]].tolist(), arrays[meta["flags"]].tolist()
    return tuple(
        BookEvent(ts, kinds[kind], oid, qty, price, sides[side], names[inst], seq, bool(syn))
        for (ts, kind, oid, qty, price, side, seq), (inst, syn) in zip(table, flags, strict=True)
    )


def _facts(facts: Mapping[str, Any] | None, name: str, arrays: _Arrays) -> Any:
    if facts is None:
        return None
    out = {}
    for fact, (values, weights) in facts.items():
        out[fact] = [
            arrays.put(f"{name}.{fact}.v", values),
            None if weights is None else arrays.put(f"{name}.{fact}.w", weights),
        ]
    return out


def _unfacts(meta: Any, arrays: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {fact: (arrays[v], None if w is None else arrays[w]) for fact, (v, w) in meta.items()}


def _trajectory(traj: Trajectory | None, arrays: _Arrays) -> dict[str, Any] | None:
    if traj is None:
        return None
    out: dict[str, Any] = {}
    for f in dataclasses.fields(traj):
        value = getattr(traj, f.name)
        if isinstance(value, np.ndarray):
            out[f.name] = {"array": arrays.put(f"trajectory.{f.name}", value)}
        elif isinstance(value, tuple):
            out[f.name] = {"tuple": list(value)}
        elif isinstance(value, np.generic):
            out[f.name] = {"value": value.item()}
        elif value is None or isinstance(value, int | float | str | bool):
            out[f.name] = {"value": value}
        else:  # a new field of another kind needs a new version of this format
            raise TypeError(f"Trajectory.{f.name} ({type(value).__name__}) has no encoding")
    return out


def _untrajectory(meta: Any, arrays: Mapping[str, np.ndarray]) -> Trajectory | None:
    if meta is None:
        return None
    kwargs: dict[str, Any] = {}
    for name, spec in meta.items():
        if "array" in spec:
            kwargs[name] = arrays[spec["array"]]
        elif "tuple" in spec:
            kwargs[name] = tuple(spec["tuple"])
        else:
            kwargs[name] = spec["value"]
    return Trajectory(**kwargs)


# ------------------------------------------------------------------------------ records
def encode_window(window: ClosedWindow, instrument: Instrument | None = None) -> bytes:
    """``window`` as a closed-window record (the current ``VERSION``), with the instrument's
    venue metadata when the feed sent some."""
    arrays = _Arrays()
    header = {
        "venue": instrument.as_dict() if instrument is not None else None,
        "instrument": window.instrument,
        "start_ns": window.start_ns,
        "end_ns": window.end_ns,
        "closed_by": window.closed_by,
        "open_mid": window.open_mid,
        "observed_end_ns": window.observed_end_ns,
        "faults": dict(window.faults),
        "degraded": window.degraded,
        "in_session": window.in_session,
        "session": list(window.session) if window.session is not None else None,
        "feed_depth": window.feed_depth,
        "opening_book": _book(window.opening_book, "opening_book", arrays),
        "history_book": _book(window.history_book, "history_book", arrays),
        "events": _events(window.events, "events", arrays),
        "history": _events(window.history, "history", arrays),
        "real_facts": _facts(window.real_facts, "real_facts", arrays),
        "earlier_facts": [
            _facts(f, f"earlier{i}", arrays) for i, f in enumerate(window.earlier_facts)
        ],
        "real_trajectory": _trajectory(window.real_trajectory, arrays),
    }
    header["arrays"] = arrays.directory
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    body = b"".join([_LEN.pack(len(head)), head, *arrays.chunks])
    return MAGIC + bytes([VERSION]) + zlib.compress(body, _LEVEL)


def record_version(value: bytes) -> int:
    """The format version of a closed-window record (``WindowRecordError`` if it is none)."""
    if not value or not value.startswith(MAGIC) or len(value) <= len(MAGIC):
        raise WindowRecordError("not_a_window", "the record does not start with SURVWIN")
    return value[len(MAGIC)]


def decode_window(value: bytes) -> ClosedWindow:
    """The ``ClosedWindow`` of a record ``encode_window`` made (any supported version)."""
    return decode_window_record(value)[0]


def decode_window_record(value: bytes) -> tuple[ClosedWindow, Instrument | None]:
    """The window of a record and the venue metadata it carries (None: none sent, or a
    version 1 record)."""
    version = record_version(value)
    if version not in SUPPORTED_VERSIONS:
        raise WindowRecordError(
            "unsupported_version",
            f"window record version {version}; this reader knows {sorted(SUPPORTED_VERSIONS)}",
        )
    try:
        body = zlib.decompress(value[len(MAGIC) + 1 :])
        (n,) = _LEN.unpack_from(body)
        header = orjson.loads(body[_LEN.size : _LEN.size + n])
        arrays = _read_arrays(header["arrays"], memoryview(body)[_LEN.size + n :])
        opening = _unbook(header["opening_book"], arrays)
        assert opening is not None
        venue = header.get("venue")
        meta = Instrument.from_dict(venue) if venue is not None else None
        window = ClosedWindow(
            instrument=header["instrument"],
            start_ns=header["start_ns"],
            end_ns=header["end_ns"],
            opening_book=opening,
            events=_unevents(header["events"], arrays),
            closed_by=header["closed_by"],
            history=_unevents(header["history"], arrays),
            history_book=_unbook(header["history_book"], arrays),
            open_mid=header["open_mid"],
            real_facts=_unfacts(header["real_facts"], arrays),
            earlier_facts=tuple(_unfacts(f, arrays) or {} for f in header["earlier_facts"]),
            observed_end_ns=header["observed_end_ns"],
            real_trajectory=_untrajectory(header["real_trajectory"], arrays),
            faults=header["faults"],
            degraded=header["degraded"],
            in_session=header["in_session"],
            session=tuple(session) if (session := header.get("session")) else None,
            # absent from records written before it: not known
            feed_depth=header.get("feed_depth"),
        )
        return window, meta
    except WindowRecordError:
        raise
    except (zlib.error, struct.error, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise WindowRecordError("corrupt", f"{type(exc).__name__}: {exc}") from None
    except (ValueError, AssertionError) as exc:
        raise WindowRecordError("corrupt", f"{type(exc).__name__}: {exc}") from None
