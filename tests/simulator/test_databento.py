"""The Databento MBO adapter: records built with databento_dbn, and the start of the shared
file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

dbn = pytest.importorskip("databento_dbn")

from simulator.databento import (  # noqa: E402
    F_BAD_TS_RECV,
    F_LAST,
    F_SNAPSHOT,
    DatabentoError,
    check_databento,
    load_databento,
)
from simulator.feeds import detect_format, load_feed  # noqa: E402

T0 = 1_703_541_600_000_000_000  # 2023-12-25 22:00 UTC
POINT = 1_000_000_000  # DBN's fixed-point unit: 1e-9
UNITS = 10_000  # the adapter's price units per point
ACTIONS = {
    "A": dbn.Action.ADD,
    "C": dbn.Action.CANCEL,
    "M": dbn.Action.MODIFY,
    "F": dbn.Action.FILL,
    "T": dbn.Action.TRADE,
    "R": dbn.Action.CLEAR,
}
SIDES = {"B": dbn.Side.BID, "A": dbn.Side.ASK, "N": dbn.Side.NONE}


def rec(
    i: int, action: str, side: str, price: float, size: int, oid: int, flags: int = F_LAST
) -> bytes:
    px = round(price * POINT) if price else (1 << 63) - 1
    msg = dbn.MBOMsg(
        1, 17077, T0 + i, oid, px, size, ACTIONS[action], SIDES[side], T0 + i, flags=flags
    )
    return bytes(msg)


def write(tmp_path: Path, records: list[bytes], name: str = "es.dbn") -> Path:
    meta = dbn.Metadata(
        "GLBX.MDP3", T0, dbn.SType.RAW_SYMBOL, dbn.SType.INSTRUMENT_ID, dbn.Schema.MBO,
        symbols=["ESH4"],
    )  # fmt: skip
    path = tmp_path / name
    data = meta.encode() + b"".join(records)
    if name.endswith(".zst"):
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


SNAP = F_SNAPSHOT | F_BAD_TS_RECV
BOOK = [  # two bids at 4800.00, one ask at 4800.50 (the snapshot)
    rec(0, "A", "B", 4800.0, 2, 11, SNAP),
    rec(0, "A", "B", 4800.0, 3, 12, SNAP),
    rec(0, "A", "A", 4800.5, 5, 21, SNAP),
]


def events(frame: pd.DataFrame) -> list[tuple[str, int, str, int, int]]:
    cols = ["kind", "order_id", "side", "price", "qty"]
    return [tuple(r) for r in frame[cols].itertuples(index=False, name=None)]


def test_the_snapshot_seeds_the_book_as_synthetic_adds(tmp_path: Path) -> None:
    feed = load_databento(write(tmp_path, [*BOOK, rec(1, "A", "A", 4801.0, 1, 22)]))
    assert feed.frame["synthetic"].tolist() == [True, True, True, False]
    assert events(feed.frame)[0] == ("add", 11, "bid", 4800 * UNITS, 2)
    meta = feed.instrument
    assert (meta.symbol, meta.tick_size, meta.price_scale) == ("ESH4", 2_500, UNITS)
    assert meta.timezone == "America/Chicago" and not meta.continuous
    assert feed.check.snapshot_records == 3 and feed.check.bad_ts_recv == 3


def test_a_modify_to_a_new_price_loses_priority(tmp_path: Path) -> None:
    # order 11 leaves 4800.00 and comes back: now behind 12
    feed = load_databento(
        write(tmp_path, [*BOOK, rec(1, "M", "B", 4799.75, 2, 11), rec(2, "M", "B", 4800.0, 2, 11)])
    )
    assert events(feed.frame)[3:] == [
        ("delete", 11, "bid", 4800 * UNITS, 2),
        ("add", 11, "bid", 47997500, 2),
        ("delete", 11, "bid", 47997500, 2),
        ("add", 11, "bid", 4800 * UNITS, 2),
    ]
    from simulator.book import OrderBook
    from simulator.normalized import to_messages
    from simulator.replay import FeedReplayer

    replayer = FeedReplayer(OrderBook())
    replayer.replay(to_messages(feed.frame))
    assert [o for o, _ in replayer.book.orders_at(1, 4800 * UNITS)] == [12, 11]


def test_a_smaller_size_keeps_priority_and_a_larger_one_does_not(tmp_path: Path) -> None:
    feed = load_databento(
        write(tmp_path, [*BOOK, rec(1, "M", "B", 4800.0, 1, 11), rec(2, "M", "B", 4800.0, 4, 12)])
    )
    assert events(feed.frame)[3:] == [
        ("cancel", 11, "bid", 4800 * UNITS, 1),
        ("delete", 12, "bid", 4800 * UNITS, 3),
        ("add", 12, "bid", 4800 * UNITS, 4),
    ]
    assert feed.check.requeued == 1


def test_a_fill_is_written_once_although_the_venue_then_cancels_it(tmp_path: Path) -> None:
    records = [
        *BOOK,
        rec(1, "T", "B", 4800.5, 3, 99, 0),  # a buyer takes 3 of the ask
        rec(1, "F", "A", 4800.5, 3, 21, 0),
        rec(2, "M", "A", 4800.5, 2, 21),  # the venue's own book: 5 -> 2
        rec(3, "T", "B", 4800.5, 2, 98, 0),
        rec(3, "F", "A", 4800.5, 2, 21, 0),
        rec(4, "C", "A", 4800.5, 2, 21),  # filled: the venue removes it
        rec(5, "C", "B", 4800.0, 1, 12),  # a partial cancel: 3 -> 2
    ]
    feed = load_databento(write(tmp_path, records))
    assert events(feed.frame)[3:] == [
        ("execute", 21, "ask", 48005000, 3),
        ("execute", 21, "ask", 48005000, 2),
        ("cancel", 12, "bid", 4800 * UNITS, 1),
    ]
    assert feed.check.trades == 2 and feed.check.trade_at_touch == 2
    assert feed.check.crossed_at_last == 0


def test_an_iceberg_refill_requeues_and_a_fill_beyond_the_display_is_hidden(
    tmp_path: Path,
) -> None:
    records = [
        *BOOK,
        rec(1, "F", "A", 4800.5, 5, 21, 0),  # the displayed 5 filled
        rec(2, "M", "A", 4800.5, 5, 21),  # a new tranche of 5: behind anything there
        rec(3, "F", "A", 4800.5, 7, 21, 0),  # 7 filled from a display of 5
    ]
    got = events(load_databento(write(tmp_path, records)).frame)[3:]
    assert got == [
        ("execute", 21, "ask", 48005000, 5),
        ("add", 21, "ask", 48005000, 5),
        ("execute", 21, "ask", 48005000, 5),
        ("execute_hidden", 21, "ask", 48005000, 2),
    ]


def test_crossed_books_unknown_ids_and_malformed_records_are_counted(tmp_path: Path) -> None:
    records = [
        *BOOK,
        rec(1, "A", "B", 4801.0, 1, 13),  # crosses the ask, before any trade: pre-open
        rec(2, "C", "B", 4801.0, 1, 13),
        rec(3, "C", "A", 4800.5, 1, 404),  # never added
        rec(4, "F", "A", 4800.5, 1, 405, 0),
        rec(5, "A", "N", 4800.0, 1, 14),  # an add without a side
        rec(6, "A", "B", 4800.00001, 1, 15),  # finer than the price unit written
        rec(7, "R", "N", 0, 0, 0),  # clear: every order goes
    ]
    feed = load_databento(write(tmp_path, records))
    report = check_databento(feed)
    assert report["crossed_at_last_preopen"] == 1 and report["crossed_at_last_after_open"] == 0
    assert report["unknown_order_ids"] == 2
    assert report["malformed_rows"] == 2
    tail = feed.frame.tail(3)
    assert (tail["kind"] == "delete").all() and tail["synthetic"].all()


def test_zstd_files_and_a_truncated_tail(tmp_path: Path) -> None:
    path = write(tmp_path, [*BOOK, rec(1, "A", "A", 4801.0, 1, 22)[:30]], name="es.dbn.zst")
    assert detect_format(path) == "databento"
    feed = load_feed(path)
    assert len(feed.frame) == 3 and feed.malformed == 1


def test_what_is_not_dbn_is_one_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.dbn"
    bad.write_bytes(b"not a dbn file")
    with pytest.raises(DatabentoError, match="not a DBN file"):
        load_databento(bad)
    with pytest.raises(DatabentoError, match="no such file"):
        load_databento(tmp_path / "missing.dbn.zst")


DBN_FILE = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
)


def test_the_shared_file_reconciles() -> None:
    if not DBN_FILE.exists():
        pytest.skip(f"shared Databento data not found at {DBN_FILE}")
    feed = load_databento(DBN_FILE, limit=20_000)  # the snapshot, the open and its first hour
    report = check_databento(feed)
    assert report["snapshot_records"] == 8_725 and report["malformed_rows"] == 0
    assert report["crossed_at_last_after_open"] == 0
    assert report["trades"] > 100 and report["trade_at_touch"] > 0.98
    assert report["unknown_order_ids"] <= 7  # fills in the opening auction of unseen orders
    assert feed.instrument.tick_size == 2_500
