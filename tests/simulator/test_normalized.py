"""The normalized event format: validation, files, and faithful conversion from LOBSTER."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.lobster import load_lobster
from simulator.normalized import (
    EventFormatError,
    event_from_dict,
    event_to_dict,
    iter_events,
    lobster_to_frame,
    read_events,
    to_messages,
    write_events,
)
from simulator.replay import FeedReplayer
from simulator.types import BookEvent, EventKind, Side
from tests.conftest import lobster_zip

GOOD = {
    "ts_ns": 34_200_000_000_000,
    "instrument": "GOOG",
    "kind": "add",
    "order_id": 42,
    "side": "bid",
    "price": 5_800_000,
    "qty": 100,
    "seq": 0,
    "synthetic": False,
}


def test_event_dict_round_trip() -> None:
    event = BookEvent(5, EventKind.EXECUTE, 9, 30, 100, Side.ASK, "X", 3, True)
    assert event_from_dict(event_to_dict(event)) == event


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "modify"}, "unknown kind"),
        ({"side": "buy"}, "unknown side"),
        ({"qty": "100"}, "qty must be an integer"),
        ({"price": 1.5}, "price must be an integer"),
        ({"instrument": ""}, "instrument"),
        ({"qty": -1}, "must not be negative"),
        ({"qty": 0}, "positive qty"),
    ],
)
def test_malformed_event_is_rejected_with_the_reason(change: dict, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        event_from_dict(GOOD | change)


def test_event_missing_fields_is_rejected() -> None:
    with pytest.raises(EventFormatError, match="lacks"):
        event_from_dict({"kind": "add"})
    with pytest.raises(EventFormatError, match="object"):
        event_from_dict([1, 2])


def test_jsonl_reader_skips_and_counts_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(GOOD)
        + "\n{not json\n"
        + json.dumps(GOOD | {"kind": "x"})
        + "\n"
        + json.dumps(GOOD | {"seq": 1, "order_id": 43})
        + "\n"
    )
    frame, bad = read_events(path)
    assert bad == 2
    assert frame["order_id"].tolist() == [42, 43]
    assert [e.order_id for e in iter_events(frame)] == [42, 43]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_file_round_trip(tmp_path: Path, lobster_dir: Path, suffix: str) -> None:
    day = load_lobster(lobster_zip(lobster_dir, "AMZN", 1))
    frame = lobster_to_frame(day).iloc[:2_000]
    path = tmp_path / f"amzn{suffix}"
    write_events(frame, path)
    back, bad = read_events(path)
    assert bad == 0
    assert back.equals(frame.reset_index(drop=True))


@pytest.mark.parametrize(("symbol", "levels"), [("GOOG", 10), ("AMZN", 1)])
def test_converted_stream_alone_rebuilds_the_vendor_book(
    lobster_dir: Path, symbol: str, levels: int
) -> None:
    day = load_lobster(lobster_zip(lobster_dir, symbol, levels))
    frame = lobster_to_frame(day)
    assert frame["seq"].is_monotonic_increasing
    assert (~frame["synthetic"]).sum() == len(day.messages)
    messages = to_messages(frame)
    synthetic = frame["synthetic"].to_numpy()
    last_of_batch = np.r_[~synthetic[1:], True]  # after the synthetic events that follow a message
    replayer = FeedReplayer()  # plain replay: no seeding, no reconciliation
    real = -1
    compared = matched = 0
    rows = day.orderbook
    assert rows is not None
    for i, (k, o, q, p, s) in enumerate(
        zip(
            messages.kind.tolist(),
            messages.order_id.tolist(),
            messages.qty.tolist(),
            messages.price.tolist(),
            messages.side.tolist(),
            strict=True,
        )
    ):
        replayer.apply(k, o, q, p, s)
        real += not synthetic[i]
        if last_of_batch[i] and real >= 0:
            compared += 1
            matched += np.array_equal(replayer.book.snapshot(levels), rows[real])
    assert compared == len(day.messages)
    assert matched == compared
    assert replayer.stats.unresolved_qty == 0


def test_book_events_pickle_and_copy_as_themselves() -> None:
    """Closed windows reach a scoring process pickled: every field, and the enums as members."""
    import copy
    import dataclasses
    import pickle

    from simulator.types import BookEvent, EventKind, Side

    # ``BookEvent.__reduce__`` lists the fields: one added later must be added there too
    assert len(dataclasses.fields(BookEvent)) == 9

    events = (
        BookEvent(1, EventKind.ADD, 7, 100, 5_800_000, Side.BID, "GOOG", 3),
        BookEvent(2, EventKind.DELETE, -4, 50, 5_800_100, Side.ASK, "GOOG", 4, synthetic=True),
        BookEvent(3, EventKind.EXECUTE, 9, 1, 1, Side.ASK),
    )
    back = pickle.loads(pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == events
    assert back[1].synthetic and back[2].instrument == "" and back[2].seq == 0
    assert back[0].kind is EventKind.ADD and back[1].side is Side.ASK
    assert copy.copy(events[1]) == events[1] == copy.deepcopy(events[1])
