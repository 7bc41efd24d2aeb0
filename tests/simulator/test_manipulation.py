"""Manipulation injectors write consistent feeds with the flow their typology describes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.book import OrderBook
from simulator.lobster import load_lobster
from simulator.manipulation import (
    NS_PER_S,
    Campaign,
    HiddenDepth,
    InjectionStats,
    Typology,
    _Manipulator,
    inject,
    typical_level_gap,
    window_labels,
)
from simulator.normalized import iter_events, lobster_to_frame, to_messages
from simulator.replay import FeedReplayer
from simulator.trajectory import trajectory_from_events
from tests.conftest import lobster_zip

OPEN_NS = 34_200 * NS_PER_S
START, END = OPEN_NS + 5 * 60 * NS_PER_S, OPEN_NS + 25 * 60 * NS_PER_S


@pytest.fixture(scope="module")
def first_half_hour(lobster_dir: Path) -> pd.DataFrame:
    day = load_lobster(lobster_zip(lobster_dir, "GOOG", 10))
    frame = lobster_to_frame(day)
    return frame[frame["ts_ns"] < OPEN_NS + 30 * 60 * NS_PER_S].reset_index(drop=True)


def replay_checked(frame: pd.DataFrame) -> FeedReplayer:
    """Replay with plain semantics, asserting the book is never crossed after any timestamp."""
    replayer = FeedReplayer()
    m = to_messages(frame)
    ts = m.ts_ns.tolist()
    for i, (k, o, q, p, s) in enumerate(
        zip(
            m.kind.tolist(),
            m.order_id.tolist(),
            m.qty.tolist(),
            m.price.tolist(),
            m.side.tolist(),
            strict=True,
        )
    ):
        replayer.apply(k, o, q, p, s)
        if i + 1 == len(ts) or ts[i + 1] != ts[i]:
            bid, ask = replayer.book.best_bid, replayer.book.best_ask
            assert bid is None or ask is None or bid < ask, f"crossed after event {i}"
    return replayer


@pytest.mark.parametrize("typology", list(Typology))
def test_injected_feed_is_consistent(first_half_hour: pd.DataFrame, typology: Typology) -> None:
    injection = inject(first_half_hour, Campaign(typology, START, END, 1.0, seed=3), touch_qty=100)
    frame = injection.frame
    assert injection.stats.injected_events > 0
    assert len(frame) == (
        len(first_half_hour) + injection.stats.injected_events - injection.stats.dropped_real_events
    )
    assert frame["ts_ns"].is_monotonic_increasing
    assert frame["seq"].tolist() == list(range(len(frame)))
    replayer = replay_checked(frame)
    assert replayer.stats.unresolved_qty == 0
    injected = frame[~frame["order_id"].isin(first_half_hour["order_id"])]
    assert injected["ts_ns"].between(START, END).all()  # nothing outside the campaign
    assert not injected["synthetic"].any()


def test_spoofing_places_large_orders_and_cancels_them(first_half_hour: pd.DataFrame) -> None:
    frame = inject(
        first_half_hour, Campaign(Typology.SPOOFING, START, END, seed=1), touch_qty=100
    ).frame
    own = frame[frame["order_id"] > first_half_hour["order_id"].max()]
    adds, deletes, fills = (own[own["kind"] == k] for k in ("add", "delete", "execute"))
    assert adds["qty"].max() >= 500  # the fake interest is several times the touch
    assert len(fills) > 0  # the genuine orders trade
    spoof_ids = set(adds["order_id"]) - set(fills["order_id"])
    assert spoof_ids == set(deletes["order_id"])  # every spoof order is withdrawn


def test_momentum_ignition_moves_the_price(first_half_hour: pd.DataFrame) -> None:
    clean = replay_checked(first_half_hour)
    injection = inject(
        first_half_hour,
        Campaign(Typology.MOMENTUM_IGNITION, START, END, 2.0, seed=5),
        touch_qty=100,
    )
    assert injection.stats.injected_executions > 0
    assert injection.stats.dropped_real_events > 0  # real messages about consumed liquidity
    assert replay_checked(injection.frame).stats.executions > clean.stats.executions


def _mid_per_second(frame: pd.DataFrame) -> pd.Series:
    replayer = FeedReplayer()
    m = to_messages(frame)
    seconds, mids = [], []
    for t, k, o, q, p, s in zip(
        m.ts_ns.tolist(),
        m.kind.tolist(),
        m.order_id.tolist(),
        m.qty.tolist(),
        m.price.tolist(),
        m.side.tolist(),
        strict=True,
    ):
        replayer.apply(k, o, q, p, s)
        seconds.append(t // NS_PER_S)
        mids.append(replayer.book.mid)
    return pd.Series(mids, index=seconds, dtype=float).groupby(level=0).last()


def test_momentum_ignition_market_follows_then_fades(first_half_hour: pd.DataFrame) -> None:
    injection = inject(
        first_half_hour,
        Campaign(Typology.MOMENTUM_IGNITION, START, END, 1.0, seed=5),
        touch_qty=100,
    )
    frame = injection.frame
    gap = (_mid_per_second(frame) - _mid_per_second(first_half_hour)).abs() / 100  # ticks
    moved = gap[gap >= 3]
    assert len(moved) >= 60  # 8 moves followed for 30 to 60 seconds each
    assert moved.index.min() >= START // NS_PER_S
    during = gap[(gap.index >= START // NS_PER_S) & (gap.index < END // NS_PER_S)]
    after = gap[gap.index >= END // NS_PER_S + 60]
    assert after.mean() < during.mean() / 2  # the moves fade once the campaign is over
    # every message about a real order prints the price that order rests at
    real = frame[frame["order_id"].isin(first_half_hour["order_id"]) & ~frame["synthetic"]]
    added = real[real["kind"] == "add"].set_index("order_id")["price"]
    later = real[real["kind"] != "add"]
    later = later[later["order_id"].isin(added.index)]
    assert (later["price"].to_numpy() == added.loc[later["order_id"]].to_numpy()).all()
    clean_adds = first_half_hour[first_half_hour["kind"] == "add"].set_index("order_id")["price"]
    both = added.index.intersection(clean_adds.index)
    assert (added.loc[both] != clean_adds.loc[both]).sum() > 100  # real orders followed the move


def test_quote_stuffing_intensity_scales_message_count(first_half_hour: pd.DataFrame) -> None:
    low = inject(first_half_hour, Campaign(Typology.QUOTE_STUFFING, START, END, 0.5), touch_qty=100)
    high = inject(
        first_half_hour, Campaign(Typology.QUOTE_STUFFING, START, END, 2.0), touch_qty=100
    )
    assert high.stats.injected_events > 3 * low.stats.injected_events


def test_same_seed_same_feed(first_half_hour: pd.DataFrame) -> None:
    campaign = Campaign(Typology.LAYERING, START, END, seed=9)
    a = inject(first_half_hour, campaign, touch_qty=100).frame
    b = inject(first_half_hour, campaign, touch_qty=100).frame
    assert a.equals(b)


def test_window_labels_mark_overlapping_windows() -> None:
    window = 25 * 60 * NS_PER_S
    campaign = Campaign(Typology.SPOOFING, OPEN_NS + window + 1, OPEN_NS + 2 * window - 1)
    labels = window_labels([campaign], OPEN_NS, OPEN_NS + 3 * window, window)
    assert [label["manipulated"] for label in labels] == [False, True, False]
    assert labels[1]["typology"] == "spoofing"
    assert np.diff([label["window_start_ns"] for label in labels]).tolist() == [window, window]


def test_marking_the_close_moves_the_last_price_with_orders_bunched_at_the_end(
    first_half_hour: pd.DataFrame,
) -> None:
    """The interval stands for the last minutes before a close: its end is the close."""
    campaign = Campaign(Typology.MARKING_THE_CLOSE, START, END, 1.0, seed=2)
    injection = inject(first_half_hour, campaign, touch_qty=100)
    key = ["ts_ns", "kind", "order_id", "qty"]
    rows = injection.frame.merge(first_half_hour[key], on=key, how="left", indicator=True)
    own = rows[rows["_merge"] == "left_only"]  # its sweeps execute real resting orders
    sweeps = own[own["kind"] == "execute"].drop_duplicates("ts_ns")
    # 30 per 25 minutes of interval: 24 in these 20 minutes, most in its last third
    assert 20 <= len(sweeps) <= 24
    late = sweeps["ts_ns"] >= START + 2 * (END - START) // 3
    assert late.mean() > 0.5
    sides = set(own.loc[own["kind"] == "execute", "side"])
    assert len(sides) == 1  # one side taken throughout: no unwind
    clean = _mid_per_second(first_half_hour)
    marked = _mid_per_second(injection.frame)
    at_close = END // NS_PER_S - 1
    moved = marked.loc[:at_close].iloc[-1] - clean.loc[:at_close].iloc[-1]
    buyer = sides == {"ask"}  # a buyer takes asks
    assert (moved > 0) if buyer else (moved < 0)


# ------------------------------------------------------------- feeds that show a few levels


def _level_one_book() -> OrderBook:
    book = OrderBook()
    book.add(1, 1, 9_900, 300)  # bid
    book.add(2, -1, 10_000, 100)  # ask: the one level a level-1 feed shows
    return book


def test_a_sweep_goes_on_into_hidden_levels_behind_a_shallow_feed() -> None:
    out: list = []
    stats = InjectionStats()
    hidden = HiddenDepth(feed_depth=1, gap=500, qty=200)
    m = _Manipulator(_level_one_book(), 10, out, stats, hidden)
    assert m.levels(-1, 3) == [(10_000, 100), (10_500, 200), (11_000, 200)]
    assert m.sweep(ts=5, aggressor=1, qty=250, max_levels=2) == 250
    # the shown level is executed, then the hidden one enters the feed (synthetic) and trades
    assert [(e[1], e[3], e[4], e[6]) for e in out] == [
        (4, 100, 10_000, False),
        (1, 200, 10_500, True),
        (4, 150, 10_500, False),
    ]
    assert m.book.best_ask == 10_500 and m.book.best(-1).qty == 50  # the rest is the new touch
    assert m.last_sweep_price == 10_500 and stats.hidden_levels == 1
    assert stats.injected_traded_qty == 250


def test_hidden_levels_only_behind_a_feed_shown_to_its_depth() -> None:
    # no more levels than the sweep may walk
    m = _Manipulator(_level_one_book(), 10, [], InjectionStats(), HiddenDepth(1, 500, 200))
    assert m.sweep(ts=5, aggressor=1, qty=250, max_levels=1) == 100
    # a level-2 feed showing one ask level shows all there is
    m = _Manipulator(_level_one_book(), 10, [], InjectionStats(), HiddenDepth(2, 500, 200))
    assert m.levels(-1, 3) == [(10_000, 100)]
    assert m.sweep(ts=5, aggressor=1, qty=250, max_levels=3) == 100
    # the whole book (no feed depth): nothing behind it
    m = _Manipulator(_level_one_book(), 10, [], InjectionStats())
    assert m.sweep(ts=5, aggressor=1, qty=250, max_levels=3) == 100
    # stopped by its own order at the touch: it does not jump past it
    book = _level_one_book()
    m = _Manipulator(book, 10, [], InjectionStats(), HiddenDepth(1, 500, 200))
    book.add(3, -1, 10_000, 50)
    m.own.add(3)
    assert m.sweep(ts=5, aggressor=1, qty=250, max_levels=2) == 100


def test_level_gap_is_the_same_at_every_depth(lobster_dir: Path) -> None:
    """How far the best price moves when the touch empties: a level-1 feed shows it too."""
    gaps = []
    for levels in (1, 10):
        frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "GOOG", levels)))
        gaps.append(typical_level_gap(frame[frame["ts_ns"] < START], tick=100))
    assert gaps[0] == gaps[1] > 100


def _sweeps(frame: pd.DataFrame, book: OrderBook) -> int:
    """Marketable orders that asked for more than the touch they met."""
    t = trajectory_from_events(book, list(iter_events(frame)), START, END, 100)
    hit = np.where(t.type == 1, np.r_[t.qty0[1], t.ask_qty[:-1]], np.r_[t.qty0[0], t.bid_qty[:-1]])
    return int((t.aggressive & (t.type != 2) & (hit > 0) & (t.qty > hit)).sum())


@pytest.mark.parametrize("typology", [Typology.PUMP_AND_DUMP, Typology.MARKING_THE_CLOSE])
def test_a_level_one_feed_shows_the_campaigns_sweeps(lobster_dir: Path, typology: Typology) -> None:
    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "GOOG", 1)))
    frame = frame[frame["ts_ns"] < END].reset_index(drop=True)
    replayer = FeedReplayer()
    for event in iter_events(frame[frame["ts_ns"] < START]):
        replayer.apply_event(event)
    window = frame[frame["ts_ns"] >= START].reset_index(drop=True)
    campaign = Campaign(typology, START + 60 * NS_PER_S, END - 60 * NS_PER_S, 1.0, seed=4)
    blind = inject(window, campaign, touch_qty=100, book=replayer.book)
    deep = inject(window, campaign, touch_qty=100, book=replayer.book, feed_depth=1, level_gap=500)
    clean = _sweeps(window, replayer.book)
    # without hidden depth a level-1 campaign never takes more than the touch
    assert _sweeps(blind.frame, replayer.book) <= clean + 1
    assert deep.stats.hidden_levels >= 5
    assert _sweeps(deep.frame, replayer.book) >= clean + 8
    replay_checked(deep.frame)


@pytest.mark.parametrize("typology", list(Typology))
def test_a_deep_feed_is_injected_as_before(
    first_half_hour: pd.DataFrame, typology: Typology
) -> None:
    """Level 10 shows more than a moderate sweep walks, and in this half hour every injected
    order stays within it: the feed depth changes nothing."""
    campaign = Campaign(typology, START, END, 1.0, seed=3)
    plain = inject(first_half_hour, campaign, touch_qty=100)
    deep = inject(first_half_hour, campaign, touch_qty=100, feed_depth=10, level_gap=500)
    assert deep.stats.hidden_levels == 0
    pd.testing.assert_frame_equal(plain.frame, deep.frame)


def test_orders_behind_the_feed_depth_are_not_printed_until_in_view() -> None:
    out: list = []
    stats = InjectionStats()
    book = _level_one_book()
    m = _Manipulator(book, 10, out, stats, HiddenDepth(feed_depth=1, gap=500, qty=200))
    deep = m.place(ts=1, side=1, price=9_800, qty=500)  # behind the one bid level shown
    assert deep is not None and out == [] and stats.unshown_orders == 1
    touch = m.place(ts=2, side=1, price=9_900, qty=200)  # joins the shown bid
    assert [(e[1], e[2], e[6]) for e in out] == [(1, touch, False)]
    book.delete(1)  # the real bid goes, and its level with it once ours are gone
    m.cancel(ts=3, order_id=touch)
    m.refresh(ts=3)  # the deeper order is now the best bid: it enters the feed
    assert [(e[1], e[2], e[6]) for e in out[1:]] == [(3, touch, False), (1, deep, True)]
    book.add(4, 1, 9_950, 100)  # a better bid pushes it behind the feed again
    m.refresh(ts=4)
    assert (out[-1][1], out[-1][2], out[-1][6]) == (3, deep, True)
    m.cancel(ts=5, order_id=deep)  # cancelled out of view: nothing printed
    assert len(out) == 4 and deep not in book


def test_a_real_order_trading_with_an_unprinted_one_shows_it_first() -> None:
    out: list = []
    book = _level_one_book()
    m = _Manipulator(book, 10, out, InjectionStats(), HiddenDepth(feed_depth=1, gap=500, qty=200))
    deep = m.place(ts=1, side=-1, price=10_100, qty=100)  # behind the shown ask
    book.delete(2)  # the shown ask goes (the real feed's own delete, applied by the replayer)
    assert m.absorb(ts=2, side=1, price=10_100, qty=60) == 0  # a real bid at its price
    assert [(e[1], e[2], e[3], e[6]) for e in out] == [(1, deep, 100, True), (4, deep, 60, False)]


def test_real_flow_meets_what_a_sweep_left_of_a_hidden_level_first() -> None:
    out: list = []
    stats = InjectionStats()
    book = _level_one_book()
    m = _Manipulator(book, 10, out, stats, HiddenDepth(feed_depth=1, gap=500, qty=200))
    m.sweep(ts=1, aggressor=1, qty=250, max_levels=2)  # leaves 50 at 10,500
    stand_in = out[1][2]
    # a real buy printed against a real ask at 11,000 meets the 50 at 10,500 first
    assert m.trade_through(ts=2, side=-1, price=11_000, qty=30) == 0
    assert out[-1][1:5] == (4, stand_in, 30, 10_500) and book.best(-1).qty == 20
    # a real execution at its own price is not a trade through it: nothing taken
    assert m.trade_through(ts=3, side=-1, price=10_500, qty=80) == 80
    assert m.trade_through(ts=4, side=-1, price=11_000, qty=80) == 60
    assert stand_in not in book and stats.hidden_filled_qty == 50


def test_hidden_levels_start_behind_the_deepest_level_the_book_holds() -> None:
    out: list = []
    book = _level_one_book()
    book.add(5, -1, 10_500, 50)  # a leftover resting beyond the feed's one level
    book.add(6, -1, 11_000, 50)
    m = _Manipulator(book, 10, out, InjectionStats(), HiddenDepth(feed_depth=1, gap=500, qty=200))
    assert m.sweep(ts=1, aggressor=1, qty=1_000, max_levels=4) == 400
    prices = [e[4] for e in out if e[1] == 4]
    assert prices == sorted(prices) and prices[-1] == 11_500 == m.last_sweep_price
