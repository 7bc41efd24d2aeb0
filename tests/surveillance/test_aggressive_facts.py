"""The facts of aggressive trading: bursts of sweeps and one-sided sweep pressure."""

from __future__ import annotations

import numpy as np

from simulator.units import NS_PER_MIN, NS_PER_S
from surveillance.detection.detector import DETECTION_FACTS, score_against
from surveillance.detection.metrics import AGGRESSIVE_FACTS, TAIL_FACTS, Trajectory, window_facts

S = NS_PER_S


def market(takes: list[tuple[float, int, int]], minutes: int = 3) -> Trajectory:
    """A window of marketable orders ``(second, side, qty)`` (side 1 buys, 0 sells) against a
    touch of 100 shares a side, bid 1000 / ask 1100, one passive bid between them so every
    minute has flow."""
    rows = [(m * 60.0 + 30.0, 1, 100, False) for m in range(minutes)]
    rows += [(t, side, qty, True) for t, side, qty in takes]
    rows.sort()
    n = len(rows)
    return Trajectory(
        0,
        minutes * NS_PER_MIN,
        1_000,
        1_100,
        ts_ns=np.array([int(r[0] * S) for r in rows], dtype=np.int64),
        type=np.array([r[1] for r in rows]),
        qty=np.array([r[2] for r in rows]),
        aggressive=np.array([r[3] for r in rows], dtype=bool),
        best_bid=np.full(n, 1_000),
        best_ask=np.full(n, 1_100),
        bid_qty=np.full(n, 100),
        ask_qty=np.full(n, 100),
        qty0=(100, 100),
    )


def test_a_burst_is_two_sweeps_of_one_side_within_a_second() -> None:
    # two buys of 300 (3x the touch) 3 ms apart; a buy and a sell sweep in one second; a
    # marketable buy of 50 (within the touch) beside a sweep: only the first is a burst
    w = market([(10.0, 1, 300), (10.003, 1, 300), (20.0, 1, 300), (20.5, 0, 300)])
    w2 = market([(30.0, 1, 50), (30.2, 1, 300)])
    bursts = window_facts(w)["sweep_bursts"][0]
    assert len(bursts) == 180  # one sample a second
    assert bursts[10] == 2 and bursts[20] == 1 and bursts.sum() == 3  # the most of one side
    assert (window_facts(w2)["sweep_bursts"][0] > TAIL_FACTS["sweep_bursts"].at).sum() == 0
    assert (bursts > TAIL_FACTS["sweep_bursts"].at).sum() == 1


def test_pressure_counts_the_net_sweeps_of_one_side_in_a_minute() -> None:
    # minute 0: four buy sweeps and one sell sweep (net 3); minute 1: two and two; minute 2:
    # four buys that stay within the touch (no sweep)
    takes = [(5.0 + 10 * k, 1, 200) for k in range(4)] + [(50.0, 0, 200)]
    takes += [(65.0, 1, 200), (75.0, 1, 200), (85.0, 0, 200), (95.0, 0, 200)]
    takes += [(125.0 + 5 * k, 1, 100) for k in range(4)]
    pressure = window_facts(market(takes))["sweep_pressure"][0]
    assert pressure.tolist() == [3.0, 0.0, 0.0]


def test_a_trajectory_without_touch_quantities_has_no_sweep_facts() -> None:
    from dataclasses import replace

    w = replace(market([(10.0, 1, 300), (10.003, 1, 300)]), bid_qty=None, ask_qty=None)
    facts = window_facts(w)
    assert len(facts["sweep_bursts"][0]) == 0 and len(facts["sweep_pressure"][0]) == 0


def test_the_detector_scores_the_aggressive_facts_and_sees_an_ignition_burst() -> None:
    """Against rollouts that never sweep in bursts, a window with eight bursts is less like
    the simulation on ``sweep_bursts`` than a window with none; the same window without the
    bursts agrees."""
    assert set(AGGRESSIVE_FACTS) <= set(DETECTION_FACTS)
    rng = np.random.default_rng(0)

    def ordinary(seed_shift: float) -> Trajectory:
        t = np.sort(rng.uniform(0, 170, 40)) + seed_shift
        return market([(float(x), int(rng.integers(0, 2)), 300) for x in t])

    sims = [ordinary(0.0) for _ in range(8)]
    bursts = [(10.0 + 20 * k, 1, 300) for k in range(8)] + [
        (10.003 + 20 * k, 1, 300) for k in range(8)
    ]
    quiet = market([(10.0 + 20 * k, 1, 300) for k in range(8)])
    burst = market(bursts)
    z_burst = score_against(burst, sims, ("sweep_bursts",)).facts["sweep_bursts"].z
    z_quiet = score_against(quiet, sims, ("sweep_bursts",)).facts["sweep_bursts"].z
    assert z_burst is not None and z_quiet is not None
    assert z_burst < z_quiet - 3


def test_the_pressure_cut_counts_minutes_with_two_more_sweeps_of_one_side() -> None:
    cut = TAIL_FACTS["sweep_pressure"].at
    assert cut is not None
    # net 2 (three buys, one sell) is beyond the cut; net 1 is not
    two = market([(5.0, 1, 200), (15.0, 1, 200), (25.0, 1, 200), (35.0, 0, 200)], minutes=1)
    one = market([(5.0, 1, 200), (15.0, 1, 200), (35.0, 0, 200)], minutes=1)
    assert (window_facts(two)["sweep_pressure"][0] > cut).tolist() == [True]
    assert (window_facts(one)["sweep_pressure"][0] > cut).tolist() == [False]


def test_a_diverged_burst_fact_lists_the_sweeps_as_its_evidence() -> None:
    from surveillance.detection.orders import order_evidence

    w = market([(10.0, 1, 300), (10.003, 1, 300), (20.0, 0, 50)])
    ev = order_evidence(w, ["sweep_bursts", "sweep_pressure"]).as_dict()
    for entry in ev["facts"]:
        assert entry["kind"] == "sweeps"
        assert entry["total"] == 2  # the two buys beyond the touch, not the small sell
