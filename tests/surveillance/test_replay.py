"""Feed replay policies and the LOBSTER book check on the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulator.book import OrderBook, check_integrity
from simulator.lobster import load_lobster
from simulator.replay import FeedReplayer, check_lobster, seed_from_first_row, seed_levels_before
from simulator.types import BookEvent, EventKind, Side
from tests.conftest import lobster_zip

BID, ASK = 1, -1


@pytest.mark.parametrize(("symbol", "levels"), [("GOOG", 10), ("GOOG", 5), ("AMZN", 5)])
def test_book_check_matches_every_row_of_level5_and_level10_files(
    lobster_dir: Path, symbol: str, levels: int
) -> None:
    report = check_lobster(load_lobster(lobster_zip(lobster_dir, symbol, levels)))
    assert report.rows > 100_000
    assert report.match == 1.0
    assert report.best_level_match == 1.0
    assert report.stats.unresolved_qty == 0
    assert report.stats.entered_from_depth > 0  # the reconciliation is doing real work


def test_book_check_reports_a_corrupted_message_as_a_mismatch(lobster_dir: Path) -> None:
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 5))
    first_add = int(np.flatnonzero(day.messages.kind[1000:] == 1)[0]) + 1000
    day.messages.qty[first_add] += 1  # one share too many on one new order
    report = check_lobster(day)
    assert report.match < 1.0
    assert report.first_mismatches[0].row == first_add


def test_opening_book_is_the_first_row_with_the_first_message_undone() -> None:
    row = np.array([105, 10, 100, 496, 106, 5, 99, 7])
    bids, asks = seed_levels_before(row, kind=4, qty=4, price=100, side=BID)
    assert bids == {100: 500, 99: 7} and asks == {105: 10, 106: 5}
    bids, asks = seed_levels_before(row, kind=1, qty=5, price=106, side=ASK)
    assert asks == {105: 10}


def test_unknown_ids_resolve_against_anonymous_liquidity() -> None:
    replayer = FeedReplayer(OrderBook())
    replayer.seed({100: 300}, {})
    replayer.apply(1, 7, 50, 100, BID)  # a known order queued behind the seed
    replayer.apply(4, 123, 120, 100, BID)  # execution of an order resting before the open
    assert replayer.book.level(BID, 100).qty == 230
    assert list(replayer.book.level(BID, 100).orders.values()) == [180, 50]
    replayer.apply(3, 124, 500, 100, BID)  # more than any anonymous order holds
    assert replayer.stats.unknown_order_ids == 2
    assert replayer.stats.unresolved_qty == 320
    assert replayer.book.level(BID, 100).qty == 50  # the known order is never touched


def test_duplicates_overfills_and_hidden_executions_are_counted_not_raised() -> None:
    replayer = FeedReplayer()
    replayer.apply(1, 1, 10, 100, ASK)
    replayer.apply(1, 1, 10, 101, ASK)
    replayer.apply(1, 2, 0, 101, ASK)
    replayer.apply(4, 1, 15, 100, ASK)
    replayer.apply(5, 0, 3, 100, ASK)
    replayer.apply(7, 0, 0, -1, BID)
    stats = replayer.stats
    assert (stats.duplicate_adds, stats.invalid_adds, stats.overfill_qty) == (1, 1, 5)
    assert (stats.hidden_executions, stats.other_events) == (1, 1)
    assert len(replayer.book) == 0


def test_full_day_replay_keeps_the_book_consistent(lobster_dir: Path) -> None:
    # Without depth reconciliation, orders that fall beyond level 10 never see their cancels
    # in a level-10 file, so stale deep liquidity can end up crossing the touch: the levels
    # stay internally consistent, which is what this checks. check_lobster is the faithful one.
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 10))
    replayer = FeedReplayer(OrderBook("GOOG"))
    seed_from_first_row(replayer, day)
    stats = replayer.replay(day.messages)
    assert stats.events == len(day.messages)
    assert check_integrity(replayer.book, allow_crossed=True) == []
    # the MANIFEST counts 2,830 deletes and 532 executions of ids never submitted
    assert 3_362 <= stats.unknown_order_ids <= 3_400


def test_apply_event_replays_a_book_event_like_its_message_columns() -> None:
    by_event, by_columns = FeedReplayer(), FeedReplayer()
    events = [
        BookEvent(1, EventKind.ADD, 9, 100, 500, Side.ASK),
        BookEvent(2, EventKind.ADD, 9, 100, 501, Side.ASK),  # duplicate: counted, skipped
        BookEvent(3, EventKind.EXECUTE, 9, 40, 500, Side.ASK),
        BookEvent(4, EventKind.CANCEL, 77, 5, 500, Side.ASK),  # unknown id: counted
        BookEvent(5, EventKind.DELETE, 9, 60, 500, Side.ASK),
    ]
    returned = [by_event.apply_event(e) for e in events]
    expected = [
        by_columns.apply(int(e.kind), e.order_id, e.qty, e.price, int(e.side)) for e in events
    ]
    assert returned == expected == [100, 0, 40, 0, 60]
    assert by_event.stats == by_columns.stats
    assert len(by_event.book) == 0


def test_a_gap_followed_by_a_snapshot_gives_the_vendors_book(
    lobster_dir: Path, tmp_path: Path
) -> None:
    """Lost messages leave the book wrong for the rest of the day; a resync from the feed's
    next snapshot puts it right again, and the check says how soon."""
    import zipfile

    with zipfile.ZipFile(lobster_zip(lobster_dir, "AMZN", 5)) as zf:
        zf.extractall(tmp_path)
    message = next(tmp_path.glob("*_message_5.csv"))
    book = next(tmp_path.glob("*_orderbook_5.csv"))
    n = 20_000
    lines = message.read_text().splitlines()[:n]
    adds = [i for i in range(2_000, n, 97) if lines[i].split(",")[1] == "1"][:10]
    for i in adds:
        lines[i] = "lost,in,transit"  # ten adds lost: their later cancels find nothing
    message.write_text("\n".join(lines) + "\n")
    book.write_text("\n".join(book.read_text().splitlines()[:n]) + "\n")
    day = load_lobster(message)
    assert day.malformed_rows == 10
    plain = check_lobster(day)
    assert plain.stats.sequence_gaps == 10 and plain.stats.resyncs == 0
    assert plain.rows - plain.matching_rows > 100 and max(plain.recovery_events) > 50
    day = load_lobster(message)
    repaired = check_lobster(day, resync_every_ns=0)
    assert repaired.stats.resyncs == 10
    assert repaired.match > 0.999
    assert repaired.recovery_events == [0] * 10  # right again at the snapshot after the gap
    paced = check_lobster(load_lobster(message), resync_every_ns=5 * 10**9)
    assert plain.match < paced.match < repaired.match
    assert max(paced.recovery_events) > 0


def test_resync_replaces_differing_levels_and_keeps_the_matching_ones() -> None:
    replayer = FeedReplayer(OrderBook("T"))
    book = replayer.book
    book.add(1, BID, 9_900, 100)  # matches the snapshot: kept, with its id
    book.add(2, BID, 9_800, 50)  # the snapshot shows 70 here
    book.add(3, BID, 9_700, 10)  # gone in the snapshot
    book.add(4, ASK, 10_100, 30)
    book.add(5, ASK, 10_400, 30)  # deeper than a full side of the snapshot: left alone
    changed = replayer.resync({9_900: 100, 9_800: 70, 9_600: 5}, {10_100: 30, 10_200: 9}, 2)
    assert changed == 4  # 9_800 replaced, 9_700 removed, 9_600 and 10_200 added
    assert book.depth(BID, 5) == [(9_900, 100), (9_800, 70), (9_600, 5)]
    assert book.depth(ASK, 5) == [(10_100, 30), (10_200, 9), (10_400, 30)]
    assert 1 in book and 2 not in book and 5 in book
    replayer.apply(2, 2, 20, 9_800, BID)  # a cancel of a dropped order takes the anonymous level
    assert book.depth(BID, 2)[1] == (9_800, 50) and replayer.stats.unresolved_qty == 0
