"""Overlap coefficient estimators and stylized facts on hand-made windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from surveillance.detection.metrics import (
    FACTS,
    NS_PER_MIN,
    NS_PER_S,
    StylizedFacts,
    Trajectory,
    compare,
    normal_overlap,
    overlap_continuous,
    overlap_discrete,
    window_facts,
)


@pytest.mark.parametrize("d", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_continuous_overlap_matches_the_analytic_normal_overlap(d):
    rng = np.random.default_rng(42)
    a = rng.normal(0.0, 1.0, 20_000)
    b = rng.normal(d, 1.0, 20_000)
    assert abs(overlap_continuous(a, b) - normal_overlap(d)) < 0.02


def test_analytic_normal_overlap_agrees_with_scipy():
    for d in (0.3, 1.0, 2.5):
        assert normal_overlap(d) == pytest.approx(2 * stats.norm.cdf(-d / 2))


def test_continuous_overlap_matches_numerical_integration_for_unequal_scales():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 40_000), rng.normal(1, 2, 40_000)
    x = np.linspace(-12, 14, 200_001)
    exact = np.trapezoid(np.minimum(stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1, 2)), x)
    assert abs(overlap_continuous(a, b) - exact) < 0.02


def test_identical_samples_overlap_one_and_disjoint_samples_zero():
    x = np.random.default_rng(3).exponential(size=5_000)
    assert overlap_continuous(x, x) == pytest.approx(1.0)
    assert overlap_continuous(x, x + 1_000.0) == pytest.approx(0.0, abs=1e-6)
    assert overlap_discrete([1, 2, 3], [3, 2, 1]) == pytest.approx(1.0)
    assert overlap_discrete([1, 2, 3], [4, 5]) == 0.0


def test_a_few_outliers_do_not_make_different_samples_look_alike():
    rng = np.random.default_rng(9)
    a = rng.normal(0, 1, 5_000)
    b = np.concatenate([rng.normal(3, 1, 5_000), [1e6, -1e6]])
    assert abs(overlap_continuous(a, b) - normal_overlap(3.0)) < 0.03


def test_continuous_overlap_of_small_samples_from_one_distribution_is_high():
    rng = np.random.default_rng(2)
    values = [overlap_continuous(rng.normal(size=75), rng.normal(size=1_200)) for _ in range(20)]
    assert 0.85 < np.mean(values) < 1.0


def test_constant_samples_are_point_masses():
    assert overlap_continuous([2.0] * 10, [2.0] * 3) == pytest.approx(1.0)
    assert overlap_continuous([2.0] * 10, [3.0] * 3) == pytest.approx(0.0, abs=1e-9)


def test_discrete_overlap_is_the_exact_pmf_overlap():
    a = [1, 1, 1, 2]  # p = (.75, .25, 0)
    b = [1, 2, 3, 3]  # q = (.25, .25, .5)
    assert overlap_discrete(a, b) == pytest.approx(0.25 + 0.25)
    # weights: time-weighted spread
    assert overlap_discrete([1, 2], [1], weights_a=[1.0, 3.0]) == pytest.approx(0.25)


def test_overlap_refuses_empty_samples():
    with pytest.raises(ValueError):
        overlap_continuous([], [1.0])
    with pytest.raises(ValueError):
        overlap_discrete([1], [])


# --------------------------------------------------------------------------- facts

S = NS_PER_S


def window(**cols) -> Trajectory:
    """A 2-minute window, bid 1000 / ask 1200 at the start (2 ticks)."""
    n = len(cols["ts_ns"])
    base = {
        "type": np.ones(n, dtype=np.int64),
        "qty": np.full(n, 100),
        "aggressive": np.zeros(n, dtype=bool),
        "best_bid": np.full(n, 1_000),
        "best_ask": np.full(n, 1_200),
    }
    base.update(cols)
    return Trajectory(0, 2 * NS_PER_MIN, 1_000, 1_200, **base)


def test_spread_at_every_event_and_time_weighted():
    w = window(
        ts_ns=np.array([30 * S, 90 * S]),
        best_bid=np.array([1_000, 1_100]),
        best_ask=np.array([1_300, 1_200]),
    )
    f = window_facts(w)
    assert f["spread"][0].tolist() == [3, 1]
    values, weights = f["spread_time_weighted"]
    # 2 ticks for 30 s, 3 ticks for 60 s, 1 tick for 30 s
    assert values.tolist() == [2, 3, 1]
    assert weights.tolist() == [30 * S, 60 * S, 30 * S]


def test_order_flow_ratios_are_per_minute():
    # minute 0: bid, ask(aggressive), cancel ; minute 1: bid, bid
    w = window(
        ts_ns=np.array([1, 2, 3, 61, 62]) * S,
        type=np.array([1, 0, 2, 1, 1]),
        qty=np.array([100, 300, 50, 10, 30]),
        aggressive=np.array([False, True, False, False, False]),
    )
    f = window_facts(w)
    assert f["buy_order_ratio"][0].tolist() == [0.5, 1.0]
    assert f["aggressive_order_ratio"][0].tolist() == [0.5, 0.0]
    assert f["cancel_ratio"][0].tolist() == pytest.approx([1 / 3, 0.0])
    assert f["mean_order_volume"][0].tolist() == [200.0, 20.0]
    gaps_us = np.array([1, 1, 58, 1]) * 1e6
    assert f["inter_arrival"][0] == pytest.approx(np.log10(1 + gaps_us))


def test_tail_facts_take_every_order_and_cancel_even_in_a_trailing_part_minute():
    """``large_orders`` / ``large_cancels`` are event-level: a window of 90 s has one whole
    minute of per-minute facts, but every order of the window counts in the tails."""
    w = Trajectory(
        0,
        90 * S,
        1_000,
        1_200,
        ts_ns=np.array([10 * S, 20 * S, 70 * S, 80 * S]),
        type=np.array([1, 2, 0, 2]),
        qty=np.array([100, 300, 1_000, 50]),
        aggressive=np.zeros(4, dtype=bool),
        best_bid=np.full(4, 1_000),
        best_ask=np.full(4, 1_200),
    )
    f = window_facts(w)
    assert f["max_order_volume"][0].tolist() == [2.0]  # minute 0 only
    assert f["large_orders"][0].tolist() == [2.0, 3.0]
    assert np.allclose(10 ** f["large_cancels"][0], [300, 50])


def test_tail_facts_leave_out_fleeting_orders():
    """A large order withdrawn 5 ms after it arrived is fleeting: neither its add nor its
    cancel reaches the size tails. Without order ids nothing can be paired, and both count."""
    from dataclasses import replace

    from surveillance.detection.metrics import fleeting

    w = Trajectory(
        0,
        60 * S,
        1_000,
        1_200,
        ts_ns=np.array([1 * S, 1 * S + 5_000_000, 2 * S, 10 * S, 11 * S]),
        type=np.array([1, 2, 1, 2, 2]),
        qty=np.array([5_000, 5_000, 300, 300, 40]),
        aggressive=np.zeros(5, dtype=bool),
        best_bid=np.full(5, 1_000),
        best_ask=np.full(5, 1_200),
        order_id=np.array([7, 7, 8, 8, 3]),  # order 3 rested before the window
    )
    assert fleeting(w).tolist() == [True, True, False, False, False]
    f = window_facts(w)
    assert np.allclose(10 ** f["large_orders"][0], [300])
    assert np.allclose(10 ** f["large_cancels"][0], [300, 40])
    assert f["cancel_ratio"][0].tolist() == [0.6]  # the other facts still see every order
    anonymous = window_facts(replace(w, order_id=None))
    assert np.allclose(10 ** anonymous["large_orders"][0], [5_000, 300])
    with pytest.raises(ValueError, match="order_id"):
        replace(w, order_id=np.array([1, 2]))


def test_minute_without_limit_orders_gives_no_ratio_sample():
    w = window(ts_ns=np.array([1 * S]), type=np.array([2]))
    f = window_facts(w)
    assert len(f["buy_order_ratio"][0]) == 0
    assert f["cancel_ratio"][0].tolist() == [
        1.0,
    ]


def test_returns_and_volatility_follow_the_mid():
    # mid 1100 until 60 s, then 1210 (+10%): one 1-minute return, one 2-minute return
    w = window(
        ts_ns=np.array([60 * S]),
        best_bid=np.array([1_200]),
        best_ask=np.array([1_220]),
    )
    f = window_facts(w)
    r = np.log(1_210 / 1_100)
    assert f["return_1m"][0] == pytest.approx([r, 0.0])
    assert f["return_2m"][0] == pytest.approx([r])
    # the jump happens exactly at the end of minute 0's last 5 s step
    assert f["volatility"][0] == pytest.approx([abs(r), 0.0])


def test_one_sided_book_events_are_left_out_of_the_spread():
    w = window(
        ts_ns=np.array([10 * S, 20 * S]),
        best_ask=np.array([9_999_999_999, 1_200]),
    )
    assert window_facts(w)["spread"][0].tolist() == [2]


def test_pooled_facts_compare_to_one_for_the_same_windows_and_lower_for_others():
    rng = np.random.default_rng(0)

    def random_window(spread_ticks: int) -> Trajectory:
        n = 600
        ts = np.sort(rng.integers(0, 2 * NS_PER_MIN, n))
        bid = 100_000 + rng.integers(-5, 5, n) * 100
        return window(
            ts_ns=ts,
            type=rng.integers(0, 3, n),
            qty=rng.integers(1, 10, n) * 100,
            aggressive=rng.random(n) < 0.1,
            best_bid=bid,
            best_ask=bid + spread_ticks * 100,
        )

    real = StylizedFacts()
    for _ in range(3):
        real.update(random_window(2))
    same = compare(real, real)
    assert set(same) == set(FACTS)
    assert all(v == pytest.approx(1.0) for v in same.values() if v is not None)
    wide = StylizedFacts().update(random_window(5))
    assert compare(real, wide)["spread"] == 0.0


def test_unknown_fact_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown stylized fact"):
        StylizedFacts().get("sharpe")


def test_docstring_examples():
    import doctest

    import simulator.units
    import surveillance.detection.metrics

    for module in (surveillance.detection.metrics, simulator.units):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_touch_and_sweep_tails():
    """Orders that join or set the best price and cancels that take from it reach the touch
    tails (fleeting ones do not); a marketable order's size is measured against the touch it
    hit. The touch before each order is the touch after the one before it."""
    from surveillance.detection.metrics import at_touch

    t = np.array([1, 2, 3, 5, 6, 7, 8, 9, 9.005]) * S
    w = Trajectory(
        0,
        60 * S,
        1_000,
        1_200,
        ts_ns=t.astype(np.int64),
        # bid 500 @1000 (joins), bid 300 @900 (behind), bid 200 @1100 (sets the touch),
        # cancel 500 @1000 (behind by then), cancel 200 @1100 (empties the touch), an ask that
        # takes 100 @1000 and 150 @900, a bid that takes 50 of 100 @1200, and a fleeting
        # 5,000-share bid @900 that joins the touch and is gone 5 ms later
        type=np.array([1, 1, 1, 2, 2, 0, 1, 1, 2]),
        qty=np.array([500, 300, 200, 500, 200, 250, 50, 5_000, 5_000]),
        aggressive=np.array([0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool),
        best_bid=np.array([1_000, 1_000, 1_100, 1_100, 1_000, 900, 900, 900, 900]),
        best_ask=np.full(9, 1_200),
        bid_qty=np.array([600, 600, 200, 200, 100, 150, 150, 5_150, 150]),
        ask_qty=np.array([100, 100, 100, 100, 100, 100, 50, 50, 50]),
        qty0=(100, 100),
        order_id=np.array([1, 2, 3, 1, 3, 4, 5, 6, 6]),
    )
    joins, takes = at_touch(w)
    assert joins.tolist() == [True, False, True, False, False, False, False, True, False]
    assert takes.tolist() == [False, False, False, False, True, False, False, False, True]
    f = window_facts(w)
    assert np.allclose(10 ** f["touch_orders"][0], [500, 200])
    assert np.allclose(10 ** f["touch_cancels"][0], [200])
    assert np.allclose(10 ** f["sweep_ratio"][0], [2.5, 0.5])
    assert np.allclose(10 ** f["large_orders"][0], [500, 300, 200, 250, 50])
    # without the touch quantities there is nothing to tell the touch by
    from dataclasses import replace

    bare = window_facts(replace(w, bid_qty=None, ask_qty=None))
    assert all(len(bare[k][0]) == 0 for k in ("touch_orders", "touch_cancels", "sweep_ratio"))
    with pytest.raises(ValueError, match="touch"):
        at_touch(replace(w, bid_qty=None, ask_qty=None))
