"""Wire format of the stream topics.

- input (``{prefix}.events``): key = instrument (UTF-8), value = either one normalized event as
  compact JSON (``simulator.normalized.event_to_dict``), or a *batch*: a JSON array of such
  event objects, all of the key's instrument, in feed order (the publisher packs up to a few
  hundred consecutive events of one instrument into one record: per-record costs in the broker,
  the client and the worker then amortize over the batch). A batch is told apart by its first
  byte (``[``). A malformed event inside a batch is dead-lettered on its own (with its index in
  the batch) and the rest of the batch proceeds; a value that is not JSON at all is one dead
  letter. A record with the header ``surv-control: end_of_stream`` is not an event: it tells
  the worker that the instrument's feed has ended, so its open window closes (a replayed file
  ends; a live feed does not). A record with the header ``surv-control: snapshot`` carries
  the venue's book for the key's instrument (``snapshot_record``): ``{"instrument", "ts_ns",
  "depth", "bids": [[price, qty], ...], "asks": [...]}``, in feed order with the events; it
  repairs a book that an integrity fault left suspect (a lost event) and checks a trusted one.
  A record with the header ``surv-control: instrument`` carries the key's instrument metadata
  (``simulator.types.Instrument.as_dict``: tick, price scale, session hours, time zone, trade
  days), sent by ``feed`` before the instrument's first event: the worker's windows, facts and
  rollouts for that instrument use it instead of the worker's settings.
- alerts (``{prefix}.alerts``): key = instrument, value = alert JSON (``alerts/schema.py``).
- dead letter (``{prefix}.dead-letter``): key = the original key, value = JSON with the reason,
  the error, the source topic/partition/offset, ``index`` (position in a batch record, else
  null) and the original bytes (UTF-8 text when decodable, else base64; for an event of a
  batch, that event's JSON).

JSON is parsed and written with ``orjson`` (several times faster than ``json`` on this path).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import orjson

from simulator.normalized import KINDS, SIDES, EventFormatError, event_from_dict, event_to_dict
from simulator.types import BookEvent, EventKind, Instrument

CONTROL_HEADER = "surv-control"
END_OF_STREAM = b"end_of_stream"
SNAPSHOT = b"snapshot"
INSTRUMENT = b"instrument"


class MalformedRecord(ValueError):
    """An input record is not a normalized event; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class BadEvent:
    """One malformed event of a record: where in the batch (None: a single-event record),
    why, and its bytes."""

    index: int | None
    reason: str
    detail: str
    value: bytes | None


def encode_event(event: BookEvent) -> bytes:
    return orjson.dumps(event_to_dict(event))


def encode_event_dict(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def encode_batch(events: list[dict[str, Any]]) -> bytes:
    """A batch record's value: event objects of one instrument, in feed order."""
    return orjson.dumps(events)


def end_of_stream(instrument: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of an end-of-stream control record."""
    value = json.dumps({"control": "end_of_stream", "instrument": instrument}).encode()
    return instrument.encode(), value, [(CONTROL_HEADER, END_OF_STREAM)]


def _control(headers: Any) -> bytes | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        if k == CONTROL_HEADER:
            return bytes(v)
    return None


def is_end_of_stream(headers: Any) -> bool:
    return _control(headers) == END_OF_STREAM


def is_snapshot(headers: Any) -> bool:
    return _control(headers) == SNAPSHOT


def is_instrument(headers: Any) -> bool:
    return _control(headers) == INSTRUMENT


def instrument_record(instrument: Instrument) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of an instrument metadata control record."""
    value = orjson.dumps(instrument.as_dict())
    return instrument.symbol.encode(), value, [(CONTROL_HEADER, INSTRUMENT)]


def decode_instrument(key: bytes | None, value: bytes | None) -> Instrument:
    """An instrument control record's metadata; ``MalformedRecord`` when it is not one."""
    try:
        data = orjson.loads(value or b"")
        if not isinstance(data, dict):
            raise TypeError(f"metadata must be an object, got {type(data).__name__}")
        instrument = Instrument.from_dict(data)
        for name in ("tick_size", "lot_size", "price_scale", "qty_scale"):
            if type(getattr(instrument, name)) is not int:
                raise TypeError(f"{name} must be an integer")
        # the calendar is read at every window: refuse hours, days or a zone it cannot read
        from zoneinfo import ZoneInfo

        from simulator.sessions import grid_origin, trade_weekdays

        ZoneInfo(instrument.timezone)
        trade_weekdays(instrument.trade_days)
        grid_origin(instrument, 0)
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise MalformedRecord("bad_instrument", f"{type(exc).__name__}: {exc}") from None
    if key is not None and key.decode("utf-8", errors="replace") != instrument.symbol:
        raise MalformedRecord(
            "key_mismatch", f"key {key!r} is not the metadata's {instrument.symbol!r}"
        )
    return instrument


def snapshot_record(
    instrument: str, ts_ns: int, depth: int, bids: dict[int, int], asks: dict[int, int]
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of a book snapshot control record."""
    value = orjson.dumps(
        {
            "instrument": instrument,
            "ts_ns": ts_ns,
            "depth": depth,
            "bids": sorted(bids.items(), reverse=True),
            "asks": sorted(asks.items()),
        }
    )
    return instrument.encode(), value, [(CONTROL_HEADER, SNAPSHOT)]


@dataclass(frozen=True, slots=True)
class Snapshot:
    instrument: str
    ts_ns: int
    depth: int
    bids: dict[int, int]
    asks: dict[int, int]


def decode_snapshot(key: bytes | None, value: bytes | None) -> Snapshot:
    """A snapshot control record's book; ``MalformedRecord`` when it is not one."""
    try:
        data = orjson.loads(value or b"")
        instrument, ts, depth = data["instrument"], data["ts_ns"], data["depth"]
        sides = [{int(p): int(q) for p, q in data[side]} for side in ("bids", "asks")]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedRecord("bad_snapshot", f"{type(exc).__name__}: {exc}") from None
    if not (isinstance(instrument, str) and type(ts) is int and type(depth) is int and depth > 0):
        raise MalformedRecord("bad_snapshot", "instrument, ts_ns or depth of the wrong type")
    if key is not None and key.decode("utf-8", errors="replace") != instrument:
        raise MalformedRecord("key_mismatch", f"key {key!r} is not the snapshot's {instrument!r}")
    if any(q <= 0 for side in sides for q in side.values()):
        raise MalformedRecord("bad_snapshot", "a level with no quantity")
    return Snapshot(instrument, ts, depth, sides[0], sides[1])


_KINDS = {name: kind for name, kind in KINDS.items()}
_SIDES = {name: side for name, side in SIDES.items()}
_ADD = EventKind.ADD


def _event_fast(data: Any, instrument: str | None) -> BookEvent:
    """``_event`` for the common case of a well-formed event; anything else takes the slow
    path, which says precisely what is wrong (the two accept exactly the same events)."""
    try:
        ts = data["ts_ns"]
        kind = _KINDS[data["kind"]]
        order_id = data["order_id"]
        side = _SIDES[data["side"]]
        price = data["price"]
        qty = data["qty"]
        seq = data["seq"]
        name = data["instrument"]
        synthetic = data.get("synthetic", False)
    except (KeyError, TypeError, AttributeError):
        return _event(data, instrument)
    if (
        type(ts) is int
        and type(order_id) is int
        and type(price) is int
        and type(qty) is int
        and type(seq) is int
        and type(synthetic) is bool
        and type(name) is str
        and name
        and (instrument is None or name == instrument)
        and ts >= 0
        and (qty > 0 or (qty == 0 and kind is not _ADD))
    ):
        return BookEvent(ts, kind, order_id, qty, price, side, name, seq, synthetic)
    return _event(data, instrument)


def _event(data: Any, instrument: str | None) -> BookEvent:
    try:
        event = event_from_dict(data)
    except EventFormatError as exc:
        raise MalformedRecord("bad_event", str(exc)) from None
    except TypeError as exc:  # e.g. an unhashable "kind" (a list): not an event either
        raise MalformedRecord("bad_event", f"{type(exc).__name__}: {exc}") from None
    if instrument is not None and instrument != event.instrument:
        raise MalformedRecord(
            "key_mismatch",
            f"key {instrument.encode()!r} is not the event's instrument {event.instrument!r}",
        )
    return event


def decode_record(key: bytes | None, value: bytes | None) -> tuple[list[BookEvent], list[BadEvent]]:
    """The events of an input record (one event or a batch) and its malformed events.

    A value that is not JSON, or empty, is one ``BadEvent`` (index None) and no events.
    """
    if value is None:
        return [], [BadEvent(None, "empty", "record has no value", None)]
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [], [BadEvent(None, "not_json", str(exc), value)]
    instrument = None if key is None else key.decode("utf-8", errors="replace")
    if not isinstance(data, list):
        try:
            return [_event_fast(data, instrument)], []
        except MalformedRecord as exc:
            return [], [BadEvent(None, exc.reason, exc.detail, value)]
    events: list[BookEvent] = []
    bad: list[BadEvent] = []
    append = events.append
    for i, item in enumerate(data):
        try:
            append(_event_fast(item, instrument))
        except MalformedRecord as exc:
            bad.append(BadEvent(i, exc.reason, exc.detail, orjson.dumps(item)))
    return events, bad


def dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    index: int | None = None,
) -> bytes:
    """Dead-letter record value: why, where from, and the original bytes."""
    original: dict[str, str] | None = None
    if value is not None:
        try:
            original = {"text": value.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"base64": base64.b64encode(value).decode()}
    return json.dumps(
        {
            "reason": reason,
            "detail": detail,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "index": index,
            "key": None if key is None else key.decode("utf-8", errors="replace"),
            "original": original,
        },
        separators=(",", ":"),
    ).encode()
