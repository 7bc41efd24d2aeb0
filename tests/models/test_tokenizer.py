"""Order tokenizer: id bijection, bins, decode/encode round trips, JSON, book features."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.tokenizer import (
    INSIDE_STEPS,
    LOB_DIM,
    MARKETABLE_BASE,
    N_INTERVAL,
    N_LEVELS,
    N_MID_BUCKETS,
    N_PRICE,
    N_TYPES,
    N_VOLUME,
    VOCAB_SIZE,
    Bins,
    OrderTokenizer,
    book_rows,
    features_from_rows,
    mid2_from_rows,
    mid_bucket,
    pad_rows,
    price_codes,
    time_of_day,
    token_fields,
    token_id,
)
from simulator.book import OrderBook
from simulator.orderstream import OrderStream, OrderType
from simulator.rollout import cancel_side
from simulator.types import Side
from simulator.units import NS_PER_S

TICK = 100
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _synthetic_orders(n: int, seed: int):
    """Orders with round lots, joins at the touch and zero intervals as heavy point masses.

    Returns ``type, price, qty, interval, best_ask, best_bid`` (the touch each order meets).
    """
    rng = np.random.default_rng(seed)
    type_ = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    bid = (50_000 + rng.integers(-20, 20, size=n)) * TICK
    spread = rng.integers(1, 30, size=n)
    ask = bid + spread * TICK
    # limit orders: ticks more aggressive than the same side's best (join, behind, inside, through)
    d = np.where(rng.random(n) < 0.2, 0, rng.integers(-40, 35, size=n))
    limit_price = np.where(type_ == OrderType.BID, bid + d * TICK, ask - d * TICK)
    # cancels: a level behind one side's best
    k = np.where(rng.random(n) < 0.3, 0, rng.integers(0, 40, size=n))
    cancel_price = np.where(rng.random(n) < 0.5, ask + k * TICK, bid - k * TICK)
    price = np.where(type_ == OrderType.CANCEL, cancel_price, limit_price)
    qty = np.where(rng.random(n) < 0.4, 100, rng.integers(1, 1000, size=n))
    interval = np.where(rng.random(n) < 0.2, 0, rng.lognormal(13, 3, size=n).astype(np.int64))
    return type_, price, qty, interval, ask, bid


@pytest.fixture(scope="module")
def tokenizer() -> OrderTokenizer:
    return OrderTokenizer.fit(*_synthetic_orders(20_000, seed=0), seed=0)


# ---------------------------------------------------------------------- ids
def test_vocabulary_is_49152():
    assert VOCAB_SIZE == 49_152 == N_TYPES * N_PRICE * N_VOLUME * N_INTERVAL


def test_every_id_round_trips_through_its_fields():
    ids = np.arange(VOCAB_SIZE)
    fields = token_fields(ids)
    assert np.array_equal(token_id(*fields), ids)
    for f, n in zip(fields, (N_TYPES, N_PRICE, N_VOLUME, N_INTERVAL), strict=True):
        assert f.min() == 0 and f.max() == n - 1


@given(
    st.integers(0, N_TYPES - 1),
    st.integers(0, N_PRICE - 1),
    st.integers(0, N_VOLUME - 1),
    st.integers(0, N_INTERVAL - 1),
)
def test_fields_round_trip_through_the_id(t, p, v, i):
    k = token_id(t, p, v, i)
    assert 0 <= k < VOCAB_SIZE
    assert tuple(int(x) for x in token_fields(k)) == (t, p, v, i)


# ---------------------------------------------------------------------- bins
values_st = st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=300)


@FAST
@given(values_st, st.sampled_from([4, 16, 32]), st.integers(0, 2**31))
def test_bins_partition_the_integers_into_exactly_k(values, k, seed):
    bins = Bins.fit(values, k, np.random.default_rng(seed))
    assert len(bins) == k
    assert np.all(bins.lo[1:] > bins.lo[:-1])
    slots = bins.encode(values)
    assert slots.min() >= 0 and slots.max() < k
    for x, b in zip(values, slots.tolist(), strict=True):
        low, high = bins.bounds(b)
        assert (low is None or low <= x) and (high is None or x <= high)


@FAST
@given(
    st.lists(st.integers(1, 5000), min_size=1, max_size=300),
    st.integers(1, 5000),
    st.integers(0, 2**31),
)
def test_a_heavy_point_mass_gets_a_bin_of_its_own(values, heavy, seed):
    data = np.array(values + [heavy] * len(values))  # at least half the mass
    bins = Bins.fit(data, 32, np.random.default_rng(seed))
    b = int(bins.encode([heavy])[0])
    others = data[data != heavy]
    assert not np.any(bins.encode(others) == b)


@FAST
@given(values_st, st.integers(-(10**9), 10**9), st.integers(0, 2**31), st.integers(0, 2**31))
def test_decode_lands_in_the_bin_it_came_from(values, x, seed, draw_seed):
    bins = Bins.fit(values, 16, np.random.default_rng(seed))
    rng = np.random.default_rng(draw_seed)
    slot = bins.encode([x])
    assert np.array_equal(bins.encode(bins.decode(slot, rng)), slot)
    decoded = bins.decode(slot, rng, parity=np.array([x % 2]))
    assert np.array_equal(bins.encode(decoded), slot)
    assert decoded[0] % 2 == x % 2


def test_decode_draws_from_the_training_values_of_the_bin():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.full(500, 100), rng.integers(101, 200, 500)])
    bins = Bins.fit(values, 4, rng)
    out = bins.decode(bins.encode(values), rng)
    assert set(out.tolist()) <= set(values.tolist())
    assert np.array_equal(bins.encode(out), bins.encode(values))


# ---------------------------------------------------------------------- orders
order_st = st.tuples(
    st.sampled_from([OrderType.ASK, OrderType.BID, OrderType.CANCEL]),
    st.integers(-150, 150),  # price offset from the bid, in ticks
    st.integers(1, 20_000),  # qty
    st.integers(0, 60 * NS_PER_S),  # interval
    st.integers(1, 40),  # spread in ticks
)


@FAST
@given(st.lists(order_st, min_size=1, max_size=20), st.integers(0, 2**31))
def test_decode_of_encode_gives_orders_with_the_same_token(tokenizer, orders, seed):
    type_, off, qty, interval, spread = (np.array(c) for c in zip(*orders, strict=True))
    bid = np.full(len(type_), 40_000 * TICK)
    ask = bid + spread * TICK
    price = bid + off * TICK
    ids = tokenizer.encode_fields(type_, price, qty, interval, ask, bid)
    dec = tokenizer.decode(ids, ask, bid, np.random.default_rng(seed))
    assert np.array_equal(dec.type, type_)
    assert np.all(dec.price % TICK == 0) and np.all(dec.qty >= 1) and np.all(dec.interval_ns >= 0)
    again = tokenizer.encode_fields(dec.type, dec.price, dec.qty, dec.interval_ns, ask, bid)
    assert np.array_equal(again, ids)


def test_decode_with_explicit_uniforms_is_reproducible(tokenizer):
    ids = np.arange(0, VOCAB_SIZE, 997)
    bid = np.full(ids.shape, 40_000 * TICK)
    u = np.random.default_rng(1).random((len(ids), 3))
    a = tokenizer.decode(ids, bid + 3 * TICK, bid, u=u)
    b = tokenizer.decode(ids, bid + 3 * TICK, bid, u=u)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in a.__slots__)


def test_bid_and_ask_codes_are_mirrored_around_their_own_best():
    bid, ask = 40_000 * TICK, 40_010 * TICK
    for d in (-7, -1, 0, 1, 4, 9, 10, 13):  # behind, join, inside, at / through the far side
        b = price_codes([OrderType.BID], [bid + d * TICK], ask, bid)
        a = price_codes([OrderType.ASK], [ask - d * TICK], ask, bid)
        assert b == a
    assert price_codes([OrderType.BID], [bid], ask, bid) == 0  # join
    assert price_codes([OrderType.BID], [ask], ask, bid) == MARKETABLE_BASE  # takes the best ask
    assert 1 <= price_codes([OrderType.BID], [bid + 5 * TICK], ask, bid) <= INSIDE_STEPS
    # cancels: the side and the distance behind that side's best
    assert price_codes([OrderType.CANCEL], [ask + 3 * TICK], ask, bid) == 3
    assert price_codes([OrderType.CANCEL], [bid - 3 * TICK], ask, bid) == -4


@FAST
@given(
    st.integers(1, 60),  # spread in ticks
    st.integers(0, 2**31),
    st.sampled_from([OrderType.ASK, OrderType.BID, OrderType.CANCEL]),
)
def test_decoded_orders_never_cross_unless_their_token_is_marketable(tokenizer, spread, seed, t):
    rng = np.random.default_rng(seed)
    ids = token_id(t, np.arange(N_PRICE), rng.integers(N_VOLUME), rng.integers(N_INTERVAL))
    bid = np.full(ids.shape, 40_000 * TICK)
    ask = bid + spread * TICK
    dec = tokenizer.decode(ids, ask, bid, rng)
    lo = tokenizer.price["cancel" if t == OrderType.CANCEL else "limit"].lo
    if t == OrderType.CANCEL:  # a level behind the side its code names, never inside the spread
        on_ask = lo[np.arange(N_PRICE)] >= 0
        assert np.all(np.where(on_ask, dec.price >= ask, dec.price <= bid))
        sides = [
            cancel_side(_book_from_levels([(a, 1)], [(b, 1)]), p)
            for a, b, p in zip(ask, bid, dec.price, strict=True)
        ]
        assert sides == [-1 if x else 1 for x in on_ask]
        return
    marketable = lo[np.arange(N_PRICE)] >= MARKETABLE_BASE  # bins are all-or-none marketable
    crosses = dec.price >= ask if t == OrderType.BID else dec.price <= bid
    assert np.array_equal(crosses, marketable)
    assert np.all(dec.price > 0)


def test_tokenizer_json_round_trip_is_exact(tokenizer, tmp_path):
    path = tmp_path / "tok.json"
    tokenizer.save(path)
    again = OrderTokenizer.load(path)
    assert again.to_dict() == tokenizer.to_dict()
    assert json.loads(path.read_text()) == json.loads(json.dumps(tokenizer.to_dict()))
    type_, price, qty, interval, ask, bid = _synthetic_orders(500, seed=3)
    ids = tokenizer.encode_fields(type_, price, qty, interval, ask, bid)
    assert np.array_equal(again.encode_fields(type_, price, qty, interval, ask, bid), ids)
    a = tokenizer.decode(ids, ask, bid, np.random.default_rng(5))
    b = again.decode(ids, ask, bid, np.random.default_rng(5))
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in a.__slots__)


def test_the_clock_span_holds_time_features_inside_the_training_times(tokenizer):
    assert tokenizer.clock_span is None  # fitted without one: the real clock
    t = [(9 * 3600 + 1800) * NS_PER_S, 16 * 3600 * NS_PER_S]
    assert np.array_equal(tokenizer.clock(t), t)
    lo, hi = (10 * 3600) * NS_PER_S, (14 * 3600 + 1800) * NS_PER_S
    doc = tokenizer.to_dict()
    doc["features"]["clock_span_ns"] = [lo, hi]
    spanned = OrderTokenizer.from_dict(doc)
    assert spanned.clock_span == (lo, hi)
    assert OrderTokenizer.from_dict(spanned.to_dict()).clock_span == (lo, hi)
    assert np.array_equal(spanned.clock([lo - 1, lo + 5, hi, hi + 1]), [lo, lo + 5, hi, hi])
    assert np.array_equal(time_of_day(spanned.clock(t)), time_of_day([lo, hi]))
    doc["features"]["clock_span_ns"] = [hi, lo]
    with pytest.raises(ValueError, match="first <= last"):
        OrderTokenizer.from_dict(doc)


def test_json_has_no_pickle_and_bounded_samples(tokenizer):
    doc = tokenizer.to_dict()
    text = json.dumps(doc)
    assert len(text) < 200_000
    for bins in (*doc["price"].values(), *doc["volume"].values(), doc["interval"]):
        assert all(len(s) <= 64 for s in bins["samples"])


def test_encode_stream_uses_the_book_before_each_order(tokenizer):
    rows = np.array([[40_010 * TICK, 5, 40_000 * TICK, 7], [40_020 * TICK, 5, 40_000 * TICK, 7]])
    stream = OrderStream(
        ts_ns=np.array([10, 25]),
        type=np.array([OrderType.ASK, OrderType.ASK], np.int8),
        side=np.array([Side.ASK, Side.ASK], np.int8),
        price=np.array([40_012 * TICK, 40_012 * TICK]),
        qty=np.array([100, 100]),
        order_id=np.array([1, 2]),
        aggressive=np.zeros(2, bool),
        source_row=np.array([1, 2]),
    )
    ids = tokenizer.encode(stream, rows)
    expected = tokenizer.encode_fields(
        stream.type, stream.price, stream.qty, [0, 15], rows[:, 0], rows[:, 2]
    )
    assert np.array_equal(ids, expected)
    # the same price is 2 ticks behind the first book's best ask and inside the second's spread
    codes = [-2, 1 + 8 * INSIDE_STEPS // 20]
    assert np.array_equal(token_fields(ids)[1], tokenizer.price["limit"].encode(codes))


# ---------------------------------------------------------------------- features
def _book_from_levels(asks: list[tuple[int, int]], bids: list[tuple[int, int]]) -> OrderBook:
    book = OrderBook("T")
    for price, qty in asks:
        book.add(book.mint_id(), Side.ASK, price, qty)
    for price, qty in bids:
        book.add(book.mint_id(), Side.BID, price, qty)
    return book


levels_st = st.lists(st.tuples(st.integers(1, 30), st.integers(1, 10_000)), max_size=12)


@FAST
@given(levels_st, levels_st, st.integers(9 * 3600, 17 * 3600), st.integers(-500, 500))
def test_a_live_books_rows_give_the_features_of_its_snapshot(asks, bids, ts_s, open_off):
    base = 50_000 * TICK
    ask_px = {base + TICK * d: q for d, q in asks}
    bid_px = {base - TICK * d: q for d, q in bids}
    book = _book_from_levels(list(ask_px.items()), list(bid_px.items()))
    open_mid = base + open_off * TICK / 2
    ts = ts_s * NS_PER_S
    rows = book_rows([book, book])
    assert np.array_equal(rows, np.stack([book.snapshot(N_LEVELS)] * 2))
    from_book = features_from_rows(rows, open_mid, [ts, ts])
    from_row = features_from_rows(book.snapshot(N_LEVELS)[None], open_mid, [ts])
    assert from_book.lob.shape == (2, LOB_DIM)

    # the volume features are the book's own levels, nearest first, empty levels 0
    def volumes(side: dict[int, int], reverse: bool) -> np.ndarray:
        v = [side[p] for p in sorted(side, reverse=reverse)][:N_LEVELS]
        return np.log1p(np.array(v + [0] * (N_LEVELS - len(v)), dtype=np.float64)) / 8.0

    for lob in from_book.lob:
        assert np.allclose(lob[:N_LEVELS], volumes(ask_px, False))
        assert np.allclose(lob[N_LEVELS : 2 * N_LEVELS], volumes(bid_px, True))
    assert 0 <= int(from_book.mid_bucket[0]) < N_MID_BUCKETS
    if len(ask_px) <= 5 and len(bid_px) <= 5:  # a level-5 row of the same book, padded
        short = features_from_rows(pad_rows(book.snapshot(5)[None]), open_mid, [ts])
        assert np.array_equal(short.lob, from_row.lob)


def test_features_of_a_lobster_row():
    row = np.array([10_100, 300, 10_000, 200, 10_200, 0, 9_900, 50])  # 2 levels
    f = features_from_rows(row[None], open_mid=10_000.0, ts_ns=[(9 * 3600 + 1800) * NS_PER_S])
    assert np.allclose(f.lob[0, 0], np.log1p(300) / 8.0)
    assert f.lob[0, 1] == 0.0 and f.lob[0, 2:N_LEVELS].sum() == 0.0
    assert np.allclose(f.lob[0, N_LEVELS : N_LEVELS + 2], np.log1p([200, 50]) / 8.0)
    assert np.allclose(f.lob[0, 2 * N_LEVELS], np.log1p(1) / 4.0)  # a one-tick spread
    assert int(f.mid_bucket[0]) == int(mid_bucket(0.5))  # mid 10,050 is half a tick up
    assert np.allclose(f.tod[0], [0.0, 1.0, 0.0, 1.0], atol=1e-6)  # the open


def test_mid_buckets_are_signed_and_clipped():
    b = mid_bucket([-1e6, -3, 0, 0.5, 3, 1e6])
    assert b[2] == N_MID_BUCKETS // 2
    assert b[0] == 0 and b[-1] == N_MID_BUCKETS - 1
    assert b[1] < b[2] < b[3] <= b[4]


def test_one_sided_book_mid_uses_its_best_price():
    rows = np.array([[9_999_999_999, 0, 10_000, 5], [10_100, 5, -9_999_999_999, 0]])
    assert mid2_from_rows(rows, 0.0).tolist() == [20_000, 20_200]


def _rows(asks: list[int], bids: list[int], levels: int = 4) -> np.ndarray:
    """One LOBSTER row with these level prices (100 shares each), empty levels padded."""
    from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE

    row = [EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0] * levels
    for i, p in enumerate(asks):
        row[4 * i : 4 * i + 2] = [p, 100]
    for i, p in enumerate(bids):
        row[4 * i + 2 : 4 * i + 4] = [p, 100]
    return np.array(row, np.int64)


def test_v3_cancels_name_a_level_by_rank_and_decode_onto_that_level():
    from models.tokenizer import cancel_level_codes, cancel_level_prices

    row = _rows([10_100, 10_400, 11_000], [10_000, 9_700, 9_100, 9_000])
    rows = np.repeat(row[None], 7, axis=0)
    price = np.array([10_100, 10_400, 11_000, 10_000, 9_700, 9_000, 10_500])
    codes = cancel_level_codes(price, rows)
    assert codes.tolist() == [0, 1, 2, -1, -2, -4, 2]  # 10,500 lies between levels 1 and 2
    assert cancel_level_prices(codes[:6], rows[:6]).tolist() == price[:6].tolist()
    # the same ranks on another book land on that book's levels (a deeper rank: its deepest)
    other = np.repeat(_rows([20_100, 20_200], [20_000])[None], 3, axis=0)
    assert cancel_level_prices(np.array([1, 3, -3]), other).tolist() == [20_200, 20_200, 20_000]


def test_v3_tokenizer_round_trips_real_cancels_and_v2_still_loads(tokenizer):
    rng = np.random.default_rng(4)
    n = 3_000
    type_, _, qty, interval, ask, bid = _synthetic_orders(n, seed=4)
    gaps = rng.integers(1, 6, size=(n, 4)) * TICK
    ask_px, bid_px = (
        ask[:, None] + np.cumsum(gaps, 1) - gaps[:, :1],
        bid[:, None] - np.cumsum(gaps, 1) + gaps[:, :1],
    )
    rows = np.zeros((n, 16), np.int64)
    rows[:, 0::4], rows[:, 2::4], rows[:, 1::4], rows[:, 3::4] = ask_px, bid_px, 100, 100
    level = rng.integers(0, 4, size=n)
    on_ask = rng.random(n) < 0.5
    cancel_price = np.where(on_ask, ask_px[np.arange(n), level], bid_px[np.arange(n), level])
    price = np.where(type_ == OrderType.CANCEL, cancel_price, ask)
    v3 = OrderTokenizer.fit(type_, price, qty, interval, ask, bid, seed=0, rows=rows)
    assert v3.version == 3 and OrderTokenizer.from_dict(v3.to_dict()).cancel_levels
    ids = v3.encode_fields(type_, price, qty, interval, ask, bid, rows)
    dec = v3.decode(ids, ask, bid, np.random.default_rng(0), rows=rows)
    cancel = type_ == OrderType.CANCEL
    assert np.array_equal(dec.price[cancel], price[cancel])  # every cancel hits its level
    with pytest.raises(ValueError, match="rows"):
        v3.encode_fields(type_, price, qty, interval, ask, bid)
    old = OrderTokenizer.from_dict(tokenizer.to_dict())  # a v2 tokenizer (ticks behind the best)
    assert tokenizer.version == 2 and not old.cancel_levels


def test_v4_sweeps_take_exactly_what_rests_up_to_their_price():
    from models.tokenizer import SWEEP_SLOT, available_from_rows

    row = _rows([10_100, 10_200, 10_400], [10_000, 9_900])  # 100 shares a level
    rows = np.repeat(row[None], 6, axis=0)
    ask, bid = rows[:, 0], rows[:, 2]
    # buy 100 at the ask (clears it), buy 200 through 10,200 (clears two levels), buy 50 at the
    # ask (partial), sell 200 through 9,900 (clears both bids), a passive bid, a cancel
    type_ = np.array([1, 1, 1, 0, 1, 2])
    price = np.array([10_100, 10_200, 10_100, 9_900, 10_000, 10_200])
    qty = np.array([100, 200, 50, 200, 100, 100])
    assert available_from_rows(type_[:4], price[:4], rows[:4]).tolist() == [100, 200, 100, 200]
    # a training set: sweeps and partial fills of the same shapes, with plain orders around
    rng = np.random.default_rng(0)
    n = 400
    pick = rng.integers(0, 6, size=n)
    interval = rng.integers(0, 10**6, size=n)
    v4 = OrderTokenizer.fit(
        type_[pick], price[pick], qty[pick], interval, ask[pick], bid[pick],
        rows=rows[pick], sweep=True,
    )  # fmt: skip
    assert v4.version == 4
    again = OrderTokenizer.from_dict(json.loads(json.dumps(v4.to_dict())))
    assert again.sweep and again.cancel_levels
    ids = again.encode_fields(type_, price, qty, interval[:6], ask, bid, rows)
    vslot = token_fields(ids)[2]
    assert [bool(v == SWEEP_SLOT) for v in vslot] == [True, True, False, True, False, False]
    dec = again.decode(ids, ask, bid, np.random.default_rng(1), rows=rows)
    assert dec.qty[[0, 1, 3]].tolist() == [100, 200, 200]
    # the same sweep token on a thicker book takes that book's depth
    thick = rows.copy()
    thick[:, 1] = 700
    dec = again.decode(ids[:2], ask[:2], bid[:2], np.random.default_rng(1), rows=thick[:2])
    assert dec.qty.tolist() == [700, 800]
    # no plain size encodes to the sweep slot
    assert again.volume["limit"].encode([1, 100, 10**9]).max() < SWEEP_SLOT
    with pytest.raises(ValueError, match="rows"):
        OrderTokenizer.fit(type_, price, qty, interval[:6], ask, bid, sweep=True)


# ---------------------------------------------------------------------- order-flow features
def test_flow_signals_describe_each_order():
    from models.tokenizer import FLOW_SIGNALS, LOB_SCALE, flow_signals

    t = [OrderType.BID, OrderType.ASK, OrderType.CANCEL, OrderType.CANCEL]
    s = flow_signals(t, [True, False, True, False], [100, 9, 50, 50], [0, 10**6, 0, 0])
    assert s.shape == (4, len(FLOW_SIGNALS))
    assert s[:, 0].tolist() == [0, 0, 1, 1]  # cancel
    assert s[:, 1].tolist() == [1, 0, 0, 0]  # marketable: limit orders only
    assert s[:, 2].tolist() == [1, 0, 0, 0]  # bid
    assert np.allclose(s[:, 3], [np.log1p(100) / LOB_SCALE, np.log1p(9) / LOB_SCALE, 0, 0])
    assert np.allclose(s[:, 4], [0, np.log1p(1.0) / LOB_SCALE, 0, 0])  # 1 ms


def test_flow_averages_follow_each_order_and_continue_from_a_state():
    from models.tokenizer import (
        FLOW_DIM,
        FLOW_HALF_LIVES,
        FLOW_PRIOR,
        FLOW_SIGNALS,
        flow_features,
        flow_signals,
        flow_step,
    )

    type_, _, qty, interval, _, _ = _synthetic_orders(3000, seed=4)
    aggressive = np.random.default_rng(4).random(3000) < 0.1
    sig = flow_signals(type_, aggressive, qty, interval)
    f = flow_features(sig)
    assert f.shape == (3000, FLOW_DIM) and f.dtype == np.float32
    state = np.tile(FLOW_PRIOR, len(FLOW_HALF_LIVES))[None]
    for j in range(3000):  # the batched step a generator takes, one order at a time
        state = flow_step(state, sig[j : j + 1])
        if j in (0, 999, 2999):
            assert np.allclose(state[0], f[j], atol=1e-6)
    # continuing from the state after order 1,999 gives the same averages as the whole run
    rest = flow_features(sig[2000:], f[1999])
    assert np.allclose(rest, f[2000:], atol=1e-5)
    # the short half-life tracks a change of regime sooner than the long one
    k = len(FLOW_SIGNALS)
    burst = flow_features(np.tile([0.0, 1.0, 0.0, 0.5, 0.5], (256, 1)))[-1]
    assert burst[1] == pytest.approx(FLOW_PRIOR[1] + (1 - FLOW_PRIOR[1]) / 2, abs=1e-3)
    assert FLOW_PRIOR[1] < burst[k + 1] < burst[1]


def test_a_flow_tokenizer_round_trips_and_rejects_other_flow_settings(tokenizer):
    from models.tokenizer import FLOW_DIM, LOB_DIM_GAPS

    doc = tokenizer.to_dict()
    assert "flow" not in doc["features"] and tokenizer.lob_dim == LOB_DIM
    flow = OrderTokenizer.from_dict(doc)
    flow.flow = True
    again = OrderTokenizer.from_dict(json.loads(json.dumps(flow.to_dict())))
    assert again.flow and again.lob_dim == LOB_DIM + FLOW_DIM
    again.level_gaps = True
    assert again.lob_dim == LOB_DIM_GAPS + FLOW_DIM
    other = flow.to_dict()
    other["features"]["flow_half_lives"] = [100, 1000]
    with pytest.raises(ValueError, match="order-flow features"):
        OrderTokenizer.from_dict(other)
