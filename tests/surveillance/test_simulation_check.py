"""``scoring.simulation_check``: whether the rollouts look like the real window at all (their
orders and spread), on every scored decision and in its decision record."""

from __future__ import annotations

import dataclasses

import numpy as np

from simulator.trajectory import Trajectory
from surveillance.detection.metrics import window_facts
from surveillance.detection.scoring import DetectionConfig, Simulation, simulation_check

S = 1_000_000_000


def trajectory(n: int = 200, spread_ticks: int = 6, seed: int = 0) -> Trajectory:
    """``n`` orders over 100 s around a mid of 10,000, the spread ``spread_ticks`` wide."""
    rng = np.random.default_rng(seed)
    bid = 10_000 - 100 * (spread_ticks // 2) + 100 * rng.integers(-2, 3, n)
    return Trajectory(
        start_ns=0,
        end_ns=100 * S,
        bid0=int(bid[0]),
        ask0=int(bid[0] + 100 * spread_ticks),
        ts_ns=np.sort(rng.integers(0, 100 * S, n)),
        type=rng.integers(0, 3, n),
        qty=rng.integers(1, 5, n) * 100,
        aggressive=rng.random(n) < 0.1,
        best_bid=bid,
        best_ask=bid + 100 * spread_ticks,
        tick_size=100,
    )


def check(real: Trajectory, sims: list[Trajectory]) -> dict:
    return simulation_check(real, window_facts(real), Simulation.of(sims, DetectionConfig(), None))


def test_rollouts_like_the_window_are_faithful() -> None:
    out = check(trajectory(), [trajectory(seed=k) for k in (1, 2, 3)])
    assert out["faithful"] and out["off"] == []
    assert out["orders_per_rollout"] == 200 and out["real_orders"] == 200
    assert out["spread_ticks"] == {"real": 6.0, "rollouts": 6.0}


def test_a_flooded_or_collapsed_simulation_is_off() -> None:
    flood = [trajectory(n=800, seed=k) for k in (1, 2, 3)]  # four times the real orders
    out = check(trajectory(), flood)
    assert not out["faithful"] and out["off"] == ["orders"] and out["order_ratio"] == 4.0
    collapsed = [trajectory(spread_ticks=1, seed=k) for k in (1, 2, 3)]
    out = check(trajectory(spread_ticks=8), collapsed)
    assert out["off"] == ["spread"] and out["spread_ratio"] == 0.125
    # a rollout may hold down to a third of the real orders, not fewer
    thin = [trajectory(n=80, seed=k) for k in (1, 2, 3)]
    assert check(trajectory(), thin)["off"] == []
    assert check(trajectory(), [trajectory(n=60, seed=k) for k in (1, 2, 3)])["off"] == ["orders"]


def test_a_level_1_feed_counts_the_orders_it_would_show() -> None:
    sims = [trajectory(seed=k) for k in (1, 2, 3)]
    full = Simulation.of(sims, DetectionConfig(), None)
    touch = Simulation.of(sims, DetectionConfig(), None, feed_depth=1)
    assert full.visible_orders == full.orders == 600
    shown = sum(len(s.touch_view().ts_ns) for s in sims)
    assert touch.orders == 600 and touch.visible_orders == shown < 600
    # a simulation built before the count falls back to every order
    old = dataclasses.replace(full, visible_orders=None)
    real = trajectory()
    assert simulation_check(real, window_facts(real), old)["orders_per_rollout"] == 200


def test_the_decision_record_says_whether_the_simulation_was_off() -> None:
    from alerts.schema import decision_record
    from surveillance.detection.pipeline import WindowDecision, WindowScore

    def record(detail: dict) -> dict:
        verdict = WindowScore(score=2.0, p_value=0.3, alert=False, detail=detail)
        return decision_record(WindowDecision("AMZN", 0, 60 * S, "m", 10, "event", verdict))

    assert record({"simulation": {"faithful": True, "off": []}})["simulation"] == "faithful"
    assert record({"simulation": {"faithful": False, "off": ["orders"]}})["simulation"] == "off"
    assert record({})["simulation"] is None  # decided before the check, or not scored


def test_the_store_keeps_each_decisions_simulation_check(tmp_path) -> None:
    """Migration 0005: the decision row keeps the check; a decision without one keeps null."""
    from alerts.migrate import current, head
    from alerts.store import AlertStore
    from surveillance.detection.pipeline import WindowDecision, WindowScore

    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.create_schema()
    assert current(store.engine) == head() == "0005"
    check = {"faithful": False, "off": ["orders"], "order_ratio": 5.09, "real_orders": 12660}
    for k, detail in enumerate(({"simulation": check}, {})):
        verdict = WindowScore(score=2.0, p_value=0.3, alert=False, detail=detail)
        assert store.put_decision(decision=WindowDecision("N", k, k + 1, "m", 5, "event", verdict))
    assert [r["simulation"] for r in store.decisions()] == [check, None]
    store.close()
