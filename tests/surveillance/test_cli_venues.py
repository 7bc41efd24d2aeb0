"""The new venues from a user's seat: convert, book-check, replay inputs, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.normalized import metadata_path, read_events, read_metadata
from surveillance.cli import main
from tests.simulator.test_bitstamp import OPEN, order, snapshot, trade
from tests.simulator.test_bitstamp import write as write_log
from tests.simulator.test_databento import BOOK, rec
from tests.simulator.test_databento import write as write_dbn


def bitstamp_log(tmp_path: Path) -> Path:
    return write_log(
        tmp_path,
        [
            OPEN,
            order(5, "order_created", 1, 1, "101.50", "0.30000000"),
            order(7, "order_deleted", 1, 1, "101.50", "0.00000000"),
            trade(8, 101.5, 0.3),
            snapshot(2_000, [("100.00", "1.00000000")], [("101.00", "2.00000000")]),
            "a malformed line",
        ],
    )


def test_convert_infers_bitstamp_and_writes_its_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "btc.parquet"
    assert main(["convert", str(bitstamp_log(tmp_path)), str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "bitstamp" and summary["malformed_rows"] == 1
    assert summary["events"] == 4 and summary["synthetic"] == 2
    frame, bad = read_events(out)
    assert len(frame) == 4 and bad == 0
    meta = read_metadata(out)
    assert meta is not None and meta.venue == "Bitstamp" and meta.qty_scale == 100_000_000
    assert Path(summary["meta"]) == metadata_path(out)


def test_convert_databento_to_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_dbn(tmp_path, [*BOOK, rec(1, "C", "B", 4800.0, 1, 12)], name="es.dbn.zst")
    out = tmp_path / "es.jsonl"
    assert main(["convert", str(src), str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "databento" and summary["kinds"] == {"add": 3, "cancel": 1}
    meta = read_metadata(out)
    assert meta is not None and meta.tick_size == 2_500 and meta.timezone == "America/Chicago"


def test_book_check_reports_each_venue(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["book-check", "--format", "bitstamp", str(bitstamp_log(tmp_path)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["snapshots"] == 1 and report["match"] == 1.0 and report["malformed_rows"] == 1
    dbn_file = write_dbn(tmp_path, [*BOOK, rec(1, "T", "B", 4800.5, 1, 9, 0)])
    assert main(["book-check", str(dbn_file)]) == 0
    text = capsys.readouterr().out
    assert "trade_at_touch: 1.0" in text and "crossed_at_last_after_open: 0" in text


@pytest.mark.parametrize(
    "args",
    [
        ["book-check", "--format", "bitstamp", "{tmp}/missing.log"],
        ["book-check", "--format", "databento", "{tmp}/day.log"],  # not DBN
        ["convert", "{tmp}/notes.txt", "{tmp}/out.parquet"],  # format unknown
        ["convert", "--format", "bitstamp", "{tmp}/notes.txt", "{tmp}/out.parquet"],
    ],
)
def test_unusable_input_is_one_line_and_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str]
) -> None:
    write_log(tmp_path, [OPEN])
    (tmp_path / "notes.txt").write_text("hello\n")
    code = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: ") and err.strip().count("\n") == 0


def test_replay_inputs_carry_the_venue_clock_and_tick(tmp_path: Path) -> None:
    from surveillance.cli.wiring import make_scorer
    from surveillance.detection.settings import DetectionSettings
    from surveillance.replay import instrument_of, read_input

    log = bitstamp_log(tmp_path)
    item = read_input(log, "bitstamp")
    assert item.meta is not None and item.meta.continuous
    midnight = 1_430_438_400 * 10**9
    assert item.origin_ns == midnight == item.day_start_ns  # windows on the UTC day's grid
    assert item.clock(60 * 10**9) == midnight + 60 * 10**9
    assert str(item.session_date) == "2015-05-01"  # what a dated case (--from DATE HH:MM) matches
    dbn = read_input(write_dbn(tmp_path, BOOK), "databento")
    with pytest.raises(ValueError, match="different ticks"):
        instrument_of([item, dbn])
    scorer, _ = make_scorer(
        DetectionSettings(generator="empirical", calibration="none"),
        instrument=instrument_of([dbn]),
    )
    assert scorer.config.tick_size == 2_500 and scorer.config.price_scale == 10_000


def test_a_window_opening_on_a_crossed_book_is_skipped() -> None:
    from simulator.book import OrderBook
    from simulator.types import BookEvent, EventKind, Side
    from surveillance.detection.pipeline import ClosedWindow
    from surveillance.detection.scoring import skipped

    book = OrderBook("ESH4")
    book.add(1, 1, 48_010_000, 1)  # a pre-open bid above the ask
    book.add(2, -1, 48_005_000, 1)
    event = BookEvent(1, EventKind.ADD, 3, 1, 48_000_000, Side.BID, "ESH4")
    window = ClosedWindow("ESH4", 0, 10, book, (event,), "event", history=(event,))
    assert skipped(window) == "book crossed or one-sided at the window's start"
    book.delete(1)
    book.add(4, 1, 48_000_000, 1)
    assert skipped(window) is None


def test_the_feed_publisher_reads_the_new_venues(tmp_path: Path) -> None:
    from streams.publisher import load_feed

    frame, bad = load_feed(bitstamp_log(tmp_path), "bitstamp")
    assert len(frame) == 4 and bad == 1
    frame, bad = load_feed(write_dbn(tmp_path, BOOK), "databento")
    assert len(frame) == 3 and bad == 0
