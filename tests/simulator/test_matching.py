"""Behaviour of the simulated clearing house (continuous double auction, price-time priority)."""

from __future__ import annotations

import pytest

from simulator.book import OrderBook, check_integrity
from simulator.matching import (
    BandReference,
    ClearingHouse,
    MatchingRules,
    OrderStatus,
    RejectReason,
    SelfTradePrevention,
    TimeInForce,
)
from simulator.types import Instrument, Side

BID, ASK = int(Side.BID), int(Side.ASK)


def house(**rules: object) -> ClearingHouse:
    return ClearingHouse(OrderBook("TEST"), MatchingRules(**rules))  # type: ignore[arg-type]


def with_asks(ch: ClearingHouse, *orders: tuple[int, int, int]) -> None:
    """Rest ``(order_id, price, qty)`` sell orders."""
    for order_id, price, qty in orders:
        assert ch.submit_limit(ASK, price, qty, order_id=order_id).status is OrderStatus.ACCEPTED


def with_bids(ch: ClearingHouse, *orders: tuple[int, int, int]) -> None:
    for order_id, price, qty in orders:
        assert ch.submit_limit(BID, price, qty, order_id=order_id).status is OrderStatus.ACCEPTED


def test_passive_limit_order_rests_without_trading() -> None:
    ch = house()
    result = ch.submit_limit(BID, 100, 5, order_id=7)
    assert result.status is OrderStatus.ACCEPTED
    assert (result.order_id, result.filled_qty, result.resting_qty) == (7, 0, 5)
    assert result.trades == [] and result.reject is None
    assert ch.book.order(7) == (Side.BID, 100, 5)
    assert ch.accepted == 1 and ch.trades == 0


def test_order_without_id_gets_a_minted_book_id() -> None:
    ch = house()
    first = ch.submit_limit(BID, 100, 5)
    second = ch.submit_limit(BID, 100, 5)
    assert first.order_id < 0 and second.order_id < 0 and first.order_id != second.order_id
    assert first.order_id in ch.book and second.order_id in ch.book


def test_marketable_order_sweeps_several_levels_at_resting_prices() -> None:
    ch = house()
    with_asks(ch, (1, 101, 3), (2, 102, 4), (3, 103, 5))
    result = ch.submit_limit(BID, 102, 10, ts_ns=42, order_id=9)
    assert [(t.price, t.qty, t.maker_order_id) for t in result.trades] == [(101, 3, 1), (102, 4, 2)]
    assert all(t.aggressor_side is Side.BID and t.taker_order_id == 9 for t in result.trades)
    assert all(t.ts_ns == 42 for t in result.trades)
    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert (result.filled_qty, result.resting_qty) == (7, 3)
    assert ch.book.best_bid == 102 and ch.book.best_ask == 103
    assert ch.last_trade_price == 102
    assert check_integrity(ch.book) == []


def test_orders_at_one_level_fill_oldest_first() -> None:
    ch = house()
    with_bids(ch, (1, 100, 2), (2, 100, 3), (3, 100, 4))
    result = ch.submit_limit(ASK, 100, 4)
    assert [(t.maker_order_id, t.qty) for t in result.trades] == [(1, 2), (2, 2)]
    assert result.status is OrderStatus.FILLED
    assert 1 not in ch.book
    assert ch.book.order(2) == (Side.BID, 100, 1)
    assert list(ch.book.level(BID, 100).orders) == [2, 3]  # the partly filled order keeps priority


def test_partial_fill_of_resting_order_reduces_it() -> None:
    ch = house()
    with_asks(ch, (1, 101, 10))
    result = ch.submit_limit(BID, 101, 4)
    assert result.status is OrderStatus.FILLED and result.filled_qty == 4
    assert ch.book.order(1) == (Side.ASK, 101, 6)
    assert ch.book.level(ASK, 101).qty == 6


def test_limit_price_stops_the_sweep() -> None:
    ch = house()
    with_bids(ch, (1, 100, 1), (2, 99, 1), (3, 98, 1))
    result = ch.submit_limit(ASK, 99, 5)
    assert [t.price for t in result.trades] == [100, 99]
    assert result.resting_qty == 3
    assert ch.book.best_ask == 99 and ch.book.best_bid == 98


def test_ioc_remainder_is_cancelled() -> None:
    ch = house()
    with_asks(ch, (1, 101, 3))
    result = ch.submit_limit(BID, 101, 5, tif=TimeInForce.IOC)
    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert (result.filled_qty, result.resting_qty, result.cancelled_qty) == (3, 0, 2)
    assert ch.book.best_bid is None and len(ch.book) == 0


def test_ioc_with_nothing_marketable_is_cancelled_and_leaves_no_trace() -> None:
    ch = house()
    with_asks(ch, (1, 105, 3))
    result = ch.submit_limit(BID, 101, 5, tif=TimeInForce.IOC)
    assert result.status is OrderStatus.CANCELLED and result.cancelled_qty == 5
    assert ch.book.best_bid is None


def test_fok_fills_in_full_across_levels() -> None:
    ch = house()
    with_asks(ch, (1, 101, 3), (2, 102, 3))
    result = ch.submit_limit(BID, 102, 6, tif=TimeInForce.FOK)
    assert result.status is OrderStatus.FILLED and result.filled_qty == 6
    assert len(ch.book) == 0


def test_fok_that_cannot_fill_in_full_is_rejected_and_trades_nothing() -> None:
    ch = house()
    with_asks(ch, (1, 101, 3), (2, 103, 3))
    result = ch.submit_limit(BID, 102, 4, tif=TimeInForce.FOK)
    assert result.status is OrderStatus.REJECTED
    assert result.reject is RejectReason.FOK_NOT_FILLABLE
    assert ch.book.order(1) == (Side.ASK, 101, 3) and ch.trades == 0


def test_passive_fok_is_rejected() -> None:
    ch = house()
    assert ch.submit_limit(BID, 100, 1, tif=TimeInForce.FOK).reject is RejectReason.FOK_NOT_FILLABLE


def test_default_time_in_force_comes_from_the_rules() -> None:
    ch = house(default_tif=TimeInForce.IOC)
    assert ch.submit_limit(BID, 100, 1).status is OrderStatus.CANCELLED
    assert ch.submit_limit(BID, 100, 1, tif=TimeInForce.GTC).status is OrderStatus.ACCEPTED


def test_market_order_sweeps_and_never_rests() -> None:
    ch = house()
    with_asks(ch, (1, 101, 3), (2, 150, 3))
    result = ch.submit_market(BID, 10, ts_ns=5)
    assert [(t.price, t.qty) for t in result.trades] == [(101, 3), (150, 3)]
    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert (result.filled_qty, result.resting_qty, result.cancelled_qty) == (6, 0, 4)
    assert len(ch.book) == 0


def test_market_order_on_empty_side_is_rejected_for_no_liquidity() -> None:
    ch = house()
    with_bids(ch, (1, 100, 5))  # liquidity on the wrong side only
    result = ch.submit_market(BID, 1)
    assert result.status is OrderStatus.REJECTED and result.reject is RejectReason.NO_LIQUIDITY
    assert ch.rejected == 1


def test_market_order_sweep_is_limited_by_the_protection_levels() -> None:
    ch = house(max_sweep_levels=2)
    with_bids(ch, (1, 100, 1), (2, 99, 1), (3, 98, 1))
    result = ch.submit_market(ASK, 3)
    assert [t.price for t in result.trades] == [100, 99]
    assert result.cancelled_qty == 1 and ch.book.best_bid == 98


def test_market_orders_can_be_disabled() -> None:
    ch = house(allow_market_orders=False)
    with_asks(ch, (1, 101, 3))
    assert ch.submit_market(BID, 1).reject is RejectReason.MARKET_ORDERS_DISABLED


@pytest.mark.parametrize(
    ("kwargs", "order", "reason"),
    [
        ({}, (BID, 100, 0), RejectReason.NON_POSITIVE_QTY),
        ({}, (BID, 100, -3), RejectReason.NON_POSITIVE_QTY),
        ({"tick_size": 100}, (BID, 10_050, 1), RejectReason.OFF_TICK),
        ({"lot_size": 100}, (BID, 100, 150), RejectReason.OFF_LOT),
        ({}, (0, 100, 1), RejectReason.INVALID_SIDE),
        ({}, (BID, 0, 1), RejectReason.NON_POSITIVE_PRICE),
    ],
)
def test_invalid_limit_order_is_rejected_with_its_reason(
    kwargs: dict[str, object], order: tuple[int, int, int], reason: RejectReason
) -> None:
    ch = house(**kwargs)
    result = ch.submit_limit(*order)
    assert result.status is OrderStatus.REJECTED and result.reject is reason
    assert len(ch.book) == 0 and ch.rejected == 1 and ch.accepted == 0


def test_market_order_of_non_positive_qty_or_off_lot_is_rejected() -> None:
    ch = house(lot_size=10)
    with_asks(ch, (1, 101, 30))
    assert ch.submit_market(BID, 0).reject is RejectReason.NON_POSITIVE_QTY
    assert ch.submit_market(BID, 15).reject is RejectReason.OFF_LOT


def test_price_outside_band_around_mid_is_rejected() -> None:
    ch = house(price_band_bps=1_000)  # +-10%
    with_bids(ch, (1, 990, 1))
    with_asks(ch, (2, 1010, 1))  # mid 1000
    result = ch.submit_limit(BID, 1101, 1)
    assert result.reject is RejectReason.OUTSIDE_PRICE_BAND
    assert ch.submit_limit(ASK, 899, 1).reject is RejectReason.OUTSIDE_PRICE_BAND
    assert ch.submit_limit(ASK, 900, 1).status is OrderStatus.FILLED  # on the band edge
    assert len(ch.book) == 1


def test_price_band_around_last_trade() -> None:
    ch = house(price_band_bps=100, band_reference=BandReference.LAST_TRADE)  # +-1%
    with_asks(ch, (1, 1000, 1))
    ch.submit_limit(BID, 1000, 1)  # trades at 1000; book now empty, reference = last trade
    assert ch.last_trade_price == 1000
    assert ch.submit_limit(BID, 1010, 1).status is OrderStatus.ACCEPTED
    assert ch.submit_limit(ASK, 1011, 1).reject is RejectReason.OUTSIDE_PRICE_BAND


def test_price_band_without_reference_price_accepts() -> None:
    ch = house(price_band_bps=1)
    assert ch.submit_limit(BID, 5, 1).status is OrderStatus.ACCEPTED


def test_duplicate_resting_order_id_is_rejected() -> None:
    ch = house()
    with_bids(ch, (1, 100, 5))
    result = ch.submit_limit(ASK, 200, 1, order_id=1)
    assert result.reject is RejectReason.DUPLICATE_ORDER_ID
    assert ch.book.order(1) == (Side.BID, 100, 5)


def test_partial_cancel_reduces_and_keeps_priority() -> None:
    ch = house()
    with_bids(ch, (1, 100, 5), (2, 100, 5))
    result = ch.cancel(1, 2)
    assert result.status is OrderStatus.CANCELLED
    assert (result.cancelled_qty, result.resting_qty) == (2, 3)
    assert list(ch.book.level(BID, 100).orders.items()) == [(1, 3), (2, 5)]
    assert ch.book.level(BID, 100).qty == 8


def test_full_cancel_removes_the_order_and_empty_level() -> None:
    ch = house()
    with_bids(ch, (1, 100, 5), (2, 99, 5))
    result = ch.cancel(1)
    assert (result.status, result.cancelled_qty, result.resting_qty) == (
        OrderStatus.CANCELLED,
        5,
        0,
    )
    assert 1 not in ch.book and ch.book.best_bid == 99
    assert ch.cancels == 1 and check_integrity(ch.book) == []


def test_cancel_of_more_than_resting_removes_the_order() -> None:
    ch = house()
    with_asks(ch, (1, 101, 5))
    result = ch.cancel(1, 50)
    assert result.cancelled_qty == 5 and 1 not in ch.book


def test_cancel_of_unknown_order_is_rejected() -> None:
    ch = house()
    result = ch.cancel(12345)
    assert result.status is OrderStatus.REJECTED and result.reject is RejectReason.UNKNOWN_ORDER


def test_cancel_of_filled_order_is_rejected_as_unknown() -> None:
    ch = house()
    with_asks(ch, (1, 101, 5))
    ch.submit_limit(BID, 101, 5)
    assert ch.cancel(1).reject is RejectReason.UNKNOWN_ORDER


def test_cancel_of_non_positive_qty_is_rejected() -> None:
    ch = house()
    with_asks(ch, (1, 101, 5))
    assert ch.cancel(1, 0).reject is RejectReason.NON_POSITIVE_QTY
    assert ch.book.order(1) == (Side.ASK, 101, 5)


def test_fork_is_independent_of_its_parent() -> None:
    ch = house()
    with_bids(ch, (1, 100, 5))
    with_asks(ch, (2, 101, 5))
    child = ch.fork()
    child.submit_limit(BID, 101, 5)
    child.cancel(1, 2)
    assert ch.book.order(2) == (Side.ASK, 101, 5) and ch.book.order(1) == (Side.BID, 100, 5)
    assert child.book.best_ask is None and child.book.order(1) == (Side.BID, 100, 3)
    assert ch.trades == 0 and child.trades == 1
    assert ch.last_trade_price is None and child.last_trade_price == 101
    assert check_integrity(ch.book) == [] and check_integrity(child.book) == []


def test_forks_mint_ids_of_their_own() -> None:
    ch = house()
    ch.submit_limit(BID, 100, 1)
    a, b = ch.fork(), ch.fork()
    ida = a.submit_limit(BID, 99, 1).order_id
    idb = b.submit_limit(BID, 99, 1).order_id
    assert ida == idb  # same history, same next id: deterministic rollouts
    assert ida not in ch.book and a.book.order(ida)[1] == 99 and b.book.order(idb)[1] == 99
    parent_next = ch.submit_limit(BID, 98, 1).order_id
    assert parent_next == ida  # the parent never saw the forks' mints
    assert ch.book.level(BID, 99) is None


def test_fork_carries_counters_and_rules() -> None:
    ch = house(tick_size=5)
    ch.submit_limit(BID, 7, 1)
    child = ch.fork()
    assert child.rules is ch.rules and child.rejected == 1
    assert child.submit_limit(BID, 7, 1).reject is RejectReason.OFF_TICK


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    ch = house(self_trade_prevention=SelfTradePrevention.CANCEL_RESTING)
    ch.submit_limit(ASK, 101, 5, order_id=1, owner=7)
    ch.submit_limit(ASK, 101, 5, order_id=2, owner=8)
    result = ch.submit_limit(BID, 101, 5, owner=7)
    assert [(t.maker_order_id, t.qty) for t in result.trades] == [(2, 5)]
    assert 1 not in ch.book and len(ch.book) == 0
    assert check_integrity(ch.book) == []


def test_self_trade_allowed_when_prevention_is_off() -> None:
    ch = house()
    ch.submit_limit(ASK, 101, 5, order_id=1, owner=7)
    result = ch.submit_limit(BID, 101, 5, owner=7)
    assert result.status is OrderStatus.FILLED


def test_rules_from_instrument() -> None:
    rules = MatchingRules.from_instrument(Instrument("GOOG"), max_sweep_levels=3)
    assert (rules.tick_size, rules.lot_size, rules.price_band_bps) == (100, 1, 1_000)
    assert rules.max_sweep_levels == 3
    ch = ClearingHouse.for_instrument(Instrument("GOOG"))
    assert ch.book.symbol == "GOOG" and ch.rules.tick_size == 100


def test_invalid_rules_raise() -> None:
    with pytest.raises(ValueError):
        MatchingRules(tick_size=0)
    with pytest.raises(ValueError):
        MatchingRules(max_sweep_levels=0)
