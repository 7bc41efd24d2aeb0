"""Instrument-relative units (``models.tokenizer.units``): sizes and intervals read against the
instrument's own scale, so that an instrument of other sizes and activity tokenizes and forks
as its scale-free shape."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.tokenizer import OrderTokenizer
from models.tokenizer.units import (
    MIN_SCALE_ORDERS,
    REFERENCE_INTERVAL_NS,
    REFERENCE_SIZE,
    SCALE_LOOKBACK,
    UnitScale,
    rolling_scales,
    scale_after,
)
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderType
from tests.simulator.test_rollout import synthetic_history

S = 1_000_000_000
BID, ASK, CANCEL = int(OrderType.BID), int(OrderType.ASK), int(OrderType.CANCEL)


def test_sizes_and_intervals_convert_both_ways_and_empty_levels_stay_empty() -> None:
    scale = UnitScale(size=np.array([200.0, 5e7]), interval_ns=np.array([50e6, 2e9]))
    assert scale.qty_in([400, 1e8]).tolist() == [200, 200]  # one scale per order
    assert scale.qty_in([0, 1]).tolist() == [0, 1]
    assert scale.qty_out([200, 200]).tolist() == [400, 100_000_000]
    assert scale.qty_out([0, 0]).tolist() == [1, 1]  # an order is never empty
    assert scale.interval_in([100e6, 4e9]).tolist() == [200e6, 200e6]
    assert scale.interval_out([200e6, 200e6]).tolist() == [100e6, 4e9]
    rows = np.array(
        [
            [10_100, 400, 9_900, 600, EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0],
            [10_100, 10**8, 9_900, 5 * 10**7, 10_200, 1, 9_800, 0],
        ]
    )
    out = scale.rows_in(rows)
    assert out[:, 0::2].tolist() == rows[:, 0::2].tolist()  # prices as they were
    assert out[0, 1::2].tolist() == [200, 300, 0, 0]
    assert out[1, 1::2].tolist() == [200, 100, 1, 0]  # a satoshi is still an order
    assert (rows[1, 1::2] == [10**8, 5 * 10**7, 1, 0]).all()  # the input is not changed


def test_the_scale_is_read_from_the_orders_before_each_one_over_the_lookback() -> None:
    ts = np.array([0, 10, 30, 60, 100]) * S
    types = [BID, CANCEL, ASK, BID, ASK]
    qty = [100, 9_999, 400, 800, 700]
    scale = rolling_scales(types, qty, ts, lookback=3)
    # sizes: the geometric mean of the limit orders (not cancels) among the 3 orders before
    # each; the first order, with none before it, reads the first limit order's size
    want = [100, 100, 100, (100 * 400) ** 0.5, (400 * 800) ** 0.5]
    assert np.allclose(scale.size, want)
    # intervals: the mean time between the orders before each (the first two: the first gap)
    assert np.asarray(scale.interval_ns).tolist() == [10 * S, 10 * S, 10 * S, 15 * S, 25 * S]
    after = scale_after(types, qty, ts, lookback=3)
    assert np.isclose(after.size, (400 * 800 * 700) ** (1 / 3))
    assert after.interval_ns == 35 * S
    # orders at one instant do not read each other: each reads only the orders before it
    same = rolling_scales([BID, BID, BID], [1, 100, 100], [0, 0, 5])
    assert np.allclose(same.size, [1, 1, 10])
    with pytest.raises(ValueError, match="time order"):
        rolling_scales(types, qty, ts[::-1])


def _relative(tok: OrderTokenizer) -> OrderTokenizer:
    out = OrderTokenizer.from_dict(tok.to_dict())
    out.relative_units = True
    return out


@pytest.fixture(scope="module")
def tokenizer() -> OrderTokenizer:
    from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    return load_checkpoint(DEFAULT_CHECKPOINT, "cpu")[1]


def test_an_instrument_scaled_in_size_and_time_tokenizes_as_the_original(tokenizer) -> None:
    """The property relative units are for: sizes times k and intervals times m, read against
    scales times k and m, give the same tokens and the same book features; decoded, the
    orders come back times k and m."""
    tok = _relative(tokenizer)
    history, rows = synthetic_history(np.random.default_rng(3), n=500)
    base = rolling_scales(history.type, history.qty, history.ts_ns)
    k, m = 1_000_000, 7
    scaled = dataclasses.replace(history, qty=history.qty * k, ts_ns=history.ts_ns * m)
    big_rows = rows.copy()
    big_rows[:, 1::4] *= k
    big_rows[:, 3::4] *= k
    measured = rolling_scales(scaled.type, scaled.qty, scaled.ts_ns)
    assert np.allclose(measured.size, np.asarray(base.size) * k)
    # (but where a span is below the floor of a millisecond: the first few orders)
    assert np.allclose(measured.interval_ns[10:], np.asarray(base.interval_ns)[10:] * m)
    big = UnitScale(np.asarray(base.size) * k, np.asarray(base.interval_ns) * m)
    ids = tok.encode(history, rows, scale=base)
    assert (tok.encode(scaled, big_rows, scale=big) == ids).all()
    assert len(np.unique(ids)) > 20  # many different tokens, not one
    f = tok.rollout_features(rows, 10_000.0, history.ts_ns, scale=base)
    g = tok.rollout_features(big_rows, 10_000.0, history.ts_ns, scale=big)
    assert np.array_equal(f.lob, g.lob)
    u = np.random.default_rng(0).random((len(ids), 3))
    one = UnitScale(200.0, 50e6)
    a = tok.decode(ids, rows[:, 0], rows[:, 2], u=u, rows=rows, scale=one)
    b = tok.decode(
        ids, rows[:, 0], rows[:, 2], u=u, rows=rows, scale=UnitScale(200.0 * k, 50e6 * m)
    )
    assert a.price.tolist() == b.price.tolist() and a.type.tolist() == b.type.tolist()
    assert (b.qty == a.qty * k).all()
    assert (np.abs(b.interval_ns - a.interval_ns * m) <= m).all()  # to the nanosecond rounded
    # the plain tokenizer reads shares: the scaled instrument is another market to it
    assert not (tokenizer.encode(scaled, big_rows) == tokenizer.encode(history, rows)).all()


def test_a_relative_tokenizer_needs_its_scale_and_keeps_its_reference_in_json(tokenizer) -> None:
    tok = _relative(tokenizer)
    history, rows = synthetic_history(np.random.default_rng(3), n=50)
    with pytest.raises(ValueError, match="pass scale"):
        tok.encode(history, rows)
    with pytest.raises(ValueError, match="pass scale"):
        tok.rollout_features(rows, 10_000.0, history.ts_ns)
    saved = tok.to_dict()
    assert saved["features"]["relative_units"] == {
        "reference_size": REFERENCE_SIZE,
        "reference_interval_ns": REFERENCE_INTERVAL_NS,
        "lookback_orders": SCALE_LOOKBACK,
        "size": "geometric mean",
    }
    assert OrderTokenizer.from_dict(saved).relative_units
    assert not OrderTokenizer.from_dict(tokenizer.to_dict()).relative_units
    saved["features"]["relative_units"]["reference_size"] = 1.0
    with pytest.raises(ValueError, match="differ from this code"):
        OrderTokenizer.from_dict(saved)
    with pytest.raises(ValueError, match="not implemented"):
        OrderTokenizer(
            tok.price, tok.volume, tok.interval, cancel_levels=True, flow=True, relative_units=True
        )


def _scaled_book(k: int) -> OrderBook:
    book = OrderBook("TEST")
    oid = 1
    for level in range(5):
        book.add(oid, 1, 9_900 - 100 * level, 300 * k)
        book.add(oid + 1, -1, 10_100 + 100 * level, 300 * k)
        oid += 2
    return book


def test_a_relative_model_forks_an_instrument_of_other_sizes_as_its_scaled_twin(tokenizer) -> None:
    """The same fork of two instruments, one with every size a thousand times the other's
    (book, history and the books the history met): the rollouts send the same orders at the
    same times and prices, sizes a thousand times as large. (Sizes of 100 in the history, so
    its scale is the reference and no size is rounded.)"""
    torch = pytest.importorskip("torch")  # noqa: F841
    from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from models.generator import LMMGenerator
    from simulator.engine import Engine
    from tests.simulator.test_engine import request

    model = load_checkpoint(DEFAULT_CHECKPOINT, "cpu")[0]
    history, rows = synthetic_history(np.random.default_rng(1), n=400)
    history = dataclasses.replace(history, qty=np.full(len(history), 100, np.int64))
    k = 1000
    big_history = dataclasses.replace(history, qty=history.qty * k)
    big_rows = rows.copy()
    big_rows[:, 1::4] *= k
    big_rows[:, 3::4] *= k

    def req(book, hist, hist_rows):
        return dataclasses.replace(
            request(),
            book=book,
            context=hist,
            context_rows=hist_rows,
            horizon_ns=10 * S,
            rollouts=3,
            max_orders=150,
        )

    def fork(book, hist, hist_rows, relative=True):
        tok = _relative(tokenizer) if relative else tokenizer
        (futures,) = Engine(LMMGenerator(model, tok)).fork([req(book, hist, hist_rows)])
        return [
            (r.ts_ns.tolist(), r.type.tolist(), r.price.tolist(), r.qty) for r in futures.results
        ]

    small = fork(_scaled_book(1), history, rows)
    large = fork(_scaled_book(k), big_history, big_rows)
    assert sum(len(ts) for ts, *_ in small) > 100  # the rollouts ran
    for (ts, ty, px, q), (ts2, ty2, px2, q2) in zip(small, large, strict=True):
        assert (ts, ty, px) == (ts2, ty2, px2)
        assert (q2 == q * k).all()
    # forked in one batch, each rollout keeps its own fork's scale
    tok = _relative(tokenizer)
    reqs = [req(_scaled_book(1), history, rows), req(_scaled_book(k), big_history, big_rows)]
    together = Engine(LMMGenerator(model, tok)).fork(reqs)
    for futures, alone in zip(together, (small, large), strict=True):
        got = [(r.ts_ns.tolist(), r.type.tolist(), r.price.tolist()) for r in futures.results]
        assert got == [o[:3] for o in alone]
        assert all((r.qty == o[3]).all() for r, o in zip(futures.results, alone, strict=True))
    # read in shares, the larger instrument is a different market: other orders
    plain = fork(_scaled_book(k), big_history, big_rows, relative=False)
    assert [o[:3] for o in plain] != [o[:3] for o in large]


def test_a_relative_model_refuses_a_fork_whose_history_cannot_measure_its_scale(tokenizer) -> None:
    pytest.importorskip("torch")
    from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from models.generator import LMMGenerator
    from simulator.rollout import ContextError
    from tests.simulator.test_engine import deep_book

    gen = LMMGenerator(load_checkpoint(DEFAULT_CHECKPOINT, "cpu")[0], _relative(tokenizer))
    history, rows = synthetic_history(np.random.default_rng(2), n=MIN_SCALE_ORDERS - 1)
    with pytest.raises(ContextError, match=f"{MIN_SCALE_ORDERS} history orders"):
        gen.begin([deep_book()], history, rows, 10_000.0, int(history.ts_ns[-1]), seed=0)
    history, rows = synthetic_history(np.random.default_rng(2), n=MIN_SCALE_ORDERS)
    gen.begin([deep_book()], history, rows, 10_000.0, int(history.ts_ns[-1]), seed=0)
