"""Wire format of the stream topics.

- input (``{prefix}.events``): key = instrument (UTF-8), value = one normalized event as compact
  JSON (``simulator.normalized.event_to_dict``). A record with the header
  ``surv-control: end_of_stream`` is not an event: it tells the worker that the instrument's
  feed has ended, so its open window closes (a replayed file ends; a live feed does not).
- alerts (``{prefix}.alerts``): key = instrument, value = alert JSON (``alerts/schema.py``).
- dead letter (``{prefix}.dead-letter``): key = the original key, value = JSON with the reason,
  the error and the original bytes (UTF-8 text when decodable, else base64).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from simulator.normalized import event_from_dict, event_to_dict
from simulator.types import BookEvent

CONTROL_HEADER = "surv-control"
END_OF_STREAM = b"end_of_stream"


class MalformedRecord(ValueError):
    """An input record is not a normalized event; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_event(event: BookEvent) -> bytes:
    return json.dumps(event_to_dict(event), separators=(",", ":")).encode()


def encode_event_dict(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def end_of_stream(instrument: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of an end-of-stream control record."""
    value = json.dumps({"control": "end_of_stream", "instrument": instrument}).encode()
    return instrument.encode(), value, [(CONTROL_HEADER, END_OF_STREAM)]


def is_end_of_stream(headers: Any) -> bool:
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(k == CONTROL_HEADER and bytes(v) == END_OF_STREAM for k, v in items)


def decode_event(key: bytes | None, value: bytes | None) -> BookEvent:
    """The event of an input record, or ``MalformedRecord`` saying why not."""
    if value is None:
        raise MalformedRecord("empty", "record has no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRecord("not_json", str(exc)) from None
    from simulator.normalized import EventFormatError

    try:
        event = event_from_dict(data)
    except EventFormatError as exc:
        raise MalformedRecord("bad_event", str(exc)) from None
    if key is not None and key.decode("utf-8", errors="replace") != event.instrument:
        raise MalformedRecord(
            "key_mismatch", f"key {key!r} is not the event's instrument {event.instrument!r}"
        )
    return event


def dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
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
            "key": None if key is None else key.decode("utf-8", errors="replace"),
            "original": original,
        },
        separators=(",", ":"),
    ).encode()
