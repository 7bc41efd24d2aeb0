"""Unit tests of the order book (state only; matching is tested in test_matching)."""

from __future__ import annotations

import pytest

from simulator.book import (
    EMPTY_ASK_PRICE,
    EMPTY_BID_PRICE,
    DuplicateOrder,
    InvalidQuantity,
    OrderBook,
    OrdersCrossed,
    UnknownOrder,
    check_integrity,
)
from simulator.types import BookEvent, EventKind, Side

BID, ASK = int(Side.BID), int(Side.ASK)


def small_book() -> OrderBook:
    book = OrderBook("TEST")
    book.add(1, BID, 100, 10)
    book.add(2, BID, 100, 20)
    book.add(3, BID, 99, 5)
    book.add(4, ASK, 102, 7)
    book.add(5, ASK, 103, 9)
    return book


def test_best_prices_spread_and_mid() -> None:
    book = small_book()
    assert book.best_bid == 100 and book.best_ask == 102
    assert book.spread == 2 and book.mid == 101
    assert book.depth(BID, 5) == [(100, 30), (99, 5)]
    assert book.depth(ASK, 1) == [(102, 7)]


def test_levels_keep_fifo_order() -> None:
    book = small_book()
    assert list(book.level(BID, 100).orders) == [1, 2]
    book.reduce(1, 4)  # a partial cancel keeps the order's place in the queue
    assert list(book.level(BID, 100).orders.items()) == [(1, 6), (2, 20)]
    book.add(6, BID, 100, 1)
    assert list(book.level(BID, 100).orders) == [1, 2, 6]


def test_delete_removes_order_and_empty_level() -> None:
    book = small_book()
    assert book.delete(4) == 7
    assert book.best_ask == 103
    assert 4 not in book
    assert book.level(ASK, 102) is None
    assert check_integrity(book) == []


def test_delete_in_the_middle_of_the_price_ladder() -> None:
    book = small_book()
    book.add(7, BID, 98, 1)
    book.delete(3)
    assert book.prices(BID) == [100, 98]
    assert check_integrity(book) == []


def test_reduce_beyond_remaining_removes_order_and_reports_removed() -> None:
    book = small_book()
    assert book.reduce(3, 50) == 5
    assert 3 not in book


def test_cancel_of_unknown_order_is_rejected() -> None:
    with pytest.raises(UnknownOrder):
        small_book().delete(999)
    with pytest.raises(UnknownOrder):
        small_book().reduce(999, 1)


def test_duplicate_id_and_bad_quantity_are_rejected() -> None:
    book = small_book()
    with pytest.raises(DuplicateOrder):
        book.add(1, ASK, 105, 1)
    with pytest.raises(InvalidQuantity):
        book.add(50, ASK, 105, 0)
    with pytest.raises(InvalidQuantity):
        book.reduce(1, 0)


def test_snapshot_pads_empty_levels_like_lobster() -> None:
    row = small_book().snapshot(3).tolist()
    assert row[:4] == [102, 7, 100, 30]
    assert row[4:8] == [103, 9, 99, 5]
    assert row[8:] == [EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0]


def test_fork_is_independent_and_mints_its_own_ids() -> None:
    book = small_book()
    parent_id = book.mint_id()
    fork = book.fork()
    fork_id = fork.mint_id()
    assert fork_id != parent_id
    fork.add(fork_id, ASK, 101, 3)
    fork.reduce(1, 10)
    assert book.best_ask == 102 and fork.best_ask == 101
    assert book.level(BID, 100).qty == 30 and fork.level(BID, 100).qty == 20
    assert check_integrity(book) == [] and check_integrity(fork) == []


def test_externally_added_negative_ids_are_never_minted_again() -> None:
    book = OrderBook()
    book.add(-5, BID, 10, 1)
    assert book.mint_id() < -5


def test_apply_dispatches_feed_events() -> None:
    book = OrderBook()
    book.apply(BookEvent(1, EventKind.ADD, 9, 100, 500, Side.ASK))
    assert book.apply(BookEvent(2, EventKind.EXECUTE, 9, 40, 500, Side.ASK)) == 40
    assert book.apply(BookEvent(3, EventKind.EXECUTE_HIDDEN, 0, 10, 500, Side.ASK)) == 0
    assert book.apply(BookEvent(4, EventKind.DELETE, 9, 60, 500, Side.ASK)) == 60
    assert len(book) == 0 and book.best_ask is None


def test_truncate_keeps_best_levels() -> None:
    book = small_book()
    removed = book.truncate(BID, 1)
    assert removed == [(3, 99, 5)]
    assert book.prices(BID) == [100]


def test_integrity_check_reports_crossed_book_as_data() -> None:
    book = small_book()
    book.add(8, BID, 102, 1)  # the book itself never matches
    assert check_integrity(book) == [OrdersCrossed(102, 102)]
    assert check_integrity(book, allow_crossed=True) == []


def test_touch_reads_best_prices_their_sizes_and_level_counts_in_one_call() -> None:
    book = small_book()
    assert book.touch() == (100, 30, 102, 7, 2, 2)
    assert OrderBook().touch() == (EMPTY_BID_PRICE, 0, EMPTY_ASK_PRICE, 0, 0, 0)
    assert book.best_prices() == (100, 102) and OrderBook().best_prices() == (None, None)


def test_deepest_price_and_level_counts_per_side_and_together() -> None:
    book = small_book()
    assert (book.deepest_price(BID), book.deepest_price(ASK)) == (99, 103)
    assert (book.level_count(BID), book.level_count(ASK), book.level_count()) == (2, 2, 4)
    assert OrderBook().deepest_price(BID) is None


def test_remove_partial_keeps_queue_position() -> None:
    book = small_book()
    assert book.remove(1, 4) == 10  # what the order held before
    assert book.orders_at(BID, 100) == [(1, 6), (2, 20)]  # still first in the queue
    assert book.level(BID, 100).qty == 26
    assert check_integrity(book) == []


def test_remove_in_full_or_of_an_unknown_id_never_raises() -> None:
    book = small_book()
    assert book.remove(4) == 7  # no size: all of it, and the emptied level goes
    assert book.best_ask == 103 and 4 not in book
    assert book.remove(4) == 0 and book.remove(404, 1) == 0
    assert book.remove(5, 100) == 9 and book.best_ask is None
    with pytest.raises(InvalidQuantity):
        book.remove(1, 0)
    assert check_integrity(book) == []


def test_newest_order_and_orders_at_a_price() -> None:
    book = small_book()
    assert book.newest_order(BID, 100) == (2, 20)
    assert book.newest_order(BID, 101) is None
    assert book.orders_at(BID, 100) == [(1, 10), (2, 20)]
    assert book.orders_at(ASK, 99) == []


def test_take_fills_best_price_then_oldest_order_and_stops_at_the_limit() -> None:
    book = small_book()
    book.add(6, ASK, 102, 3)
    fills = book.take(ASK, 12, limit=102)
    assert fills == [(4, 102, 7), (6, 102, 3)]  # 103 is beyond the limit
    assert book.best_ask == 103 and book.level_count(ASK) == 1
    fills = book.take(BID, 12)
    assert fills == [(1, 100, 10), (2, 100, 2)]
    assert book.orders_at(BID, 100) == [(2, 18)]  # the partly filled order keeps its place
    assert check_integrity(book) == []


def test_take_honours_max_levels_and_removes_skipped_orders_without_trading() -> None:
    book = small_book()
    fills = book.take(BID, 100, max_levels=1, skip=lambda order_id: order_id == 1)
    assert fills == [(2, 100, 20)]  # order 1 removed untraded, the 99 level untouched
    assert 1 not in book and book.prices(BID) == [99]
    assert check_integrity(book) == []


def test_a_passive_add_refuses_an_order_that_would_cross_and_leaves_the_book_alone() -> None:
    book = small_book()
    assert book.add_passive(6, BID, 102, 5) is False  # at the best ask
    assert book.add_passive(7, ASK, 99, 5) is False  # through the best bid
    assert 6 not in book and 7 not in book and len(book) == 5
    assert book.add_passive(8, BID, 101, 5) is True
    assert book.touch() == (101, 5, 102, 7, 3, 2)
