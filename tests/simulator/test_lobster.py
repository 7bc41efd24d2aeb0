"""The LOBSTER loader on the shared files and on damaged copies."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from simulator.lobster import FeedError, FileName, load_lobster
from tests.conftest import lobster_zip

EXPECTED_MESSAGES = {
    ("GOOG", 10): 147_916,
    ("GOOG", 5): 112_673,
    ("GOOG", 1): 49_482,
    ("AMZN", 5): 155_935,
    ("AMZN", 1): 57_515,
}


@pytest.mark.parametrize(("symbol", "levels"), sorted(EXPECTED_MESSAGES))
def test_loads_every_shared_zip(lobster_dir: Path, symbol: str, levels: int) -> None:
    day = load_lobster(lobster_zip(lobster_dir, symbol, levels))
    assert day.symbol == symbol and day.levels == levels
    assert len(day.messages) == EXPECTED_MESSAGES[(symbol, levels)]
    assert day.orderbook is not None and day.orderbook.shape == (len(day.messages), 4 * levels)
    assert day.malformed_rows == 0
    assert np.all(np.diff(day.messages.ts_ns) >= 0)
    assert np.all(day.messages.price[day.messages.kind != 5] % 100 == 0)


def test_goog_level10_event_mix_matches_manifest(lobster_dir: Path) -> None:
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 10), with_orderbook=False)
    counts = np.bincount(day.messages.kind, minlength=8)[1:6].tolist()
    assert counts == [71_258, 19, 64_961, 7_765, 3_913]
    assert int(np.median(day.messages.qty[day.messages.kind == 1])) == 100


def test_timestamps_keep_nanosecond_precision(lobster_dir: Path) -> None:
    path = lobster_zip(lobster_dir, "GOOG", 1)
    with zipfile.ZipFile(path) as zf:
        member = next(n for n in zf.namelist() if "_message_" in n)
        first = zf.read(member).split(b"\n", 3)[:3]
    expected = []
    for line in first:
        secs, frac = line.split(b",")[0].decode().split(".")
        expected.append(int(secs) * 10**9 + int(frac.ljust(9, "0")))
    day = load_lobster(path, with_orderbook=False)
    assert day.messages.ts_ns[:3].tolist() == expected


def test_csv_pair_is_found_beside_the_message_file(lobster_dir: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(lobster_zip(lobster_dir, "AMZN", 1)) as zf:
        zf.extractall(tmp_path)
    message = next(tmp_path.glob("*_message_1.csv"))
    day = load_lobster(message)
    assert day.symbol == "AMZN" and len(day.messages) == 57_515


def test_malformed_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    name = "TEST_2012-06-21_34200000_57600000_{}_1.csv"
    (tmp_path / name.format("message")).write_text(
        "34200.1,1,11,100,1000000,1\n"
        "34200.2,1,12,abc,1000100,-1\n"  # not a number
        "34200.3,9,13,100,1000100,-1\n"  # unknown type
        "34200.4,1,14,100\n"  # too few fields
        "34200.5,1,15,50,1000200,-1\n"
    )
    (tmp_path / name.format("orderbook")).write_text(
        "9999999999,0,1000000,100\n"
        "1000100,100,1000000,100\n"
        "1000100,100,1000000,100\n"
        "1000100,100,1000000,100\n"
        "1000200,50,1000000,100\n"
    )
    day = load_lobster(tmp_path / name.format("message"))
    assert day.malformed_rows == 3
    assert day.messages.order_id.tolist() == [11, 15]
    assert day.orderbook is not None and day.orderbook[:, 0].tolist() == [9999999999, 1000200]


def test_missing_file_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file"):
        load_lobster(tmp_path / "nope.zip")


def test_file_name_is_parsed() -> None:
    name = FileName.parse("GOOG_2012-06-21_34200000_57600000_message_10.csv")
    assert (name.symbol, name.date, name.start_ms, name.what, name.levels) == (
        "GOOG",
        "2012-06-21",
        34_200_000,
        "message",
        10,
    )
    with pytest.raises(FeedError):
        FileName.parse("prices.csv")
