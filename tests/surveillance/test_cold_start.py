"""Cold start (issue 32): an instrument, or a feed depth, the calibration has no norms for."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.types import Instrument
from surveillance.detection.coldstart import (
    ColdStarts,
    ColdState,
    Profile,
    likeness,
    own_weight,
    weighted_quantile_threshold,
)
from surveillance.detection.detector import (
    Calibration,
    FactNorms,
    adapted_norms,
    mixture_norms,
)
from surveillance.detection.pipeline import WindowScore
from surveillance.studies import simcache

FACTS = ("a", "b", "c")


def _windows(inst: str, center: float, n: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    return [{f: float(center + rng.normal()) for f in FACTS} for _ in range(n)]


def _calibration(profiles: bool = True) -> Calibration:
    """Two instruments whose facts sit at -2 (A) and -6 (B) against their simulations."""
    rows = [("A", None, z) for z in _windows("A", -2.0, 30, 1)]
    rows += [("B", None, z) for z in _windows("B", -6.0, 30, 2)]
    prof = {
        "A": Profile(1e-4, 300.0, 2.0, 10),
        "B": Profile(1e-2, 30.0, 20.0, 10),
    }
    return Calibration.fit_normal(
        rows,
        far=0.05,
        method="test",
        profiles=[prof[inst] for inst, _, _ in rows] if profiles else None,
    )


def _alert(cal: Calibration, verdict) -> bool:
    return cal.is_alert(verdict.score, verdict.threshold)


def test_profiles_are_recorded_and_survive_save_and_load(tmp_path):
    cal = _calibration()
    assert set(cal.profiles) == {"A", "B"}
    assert cal.profiles["A"]["feed_depth"] == 10
    cal.save(tmp_path / "cal.json")
    again = Calibration.load(tmp_path / "cal.json")
    assert again.profiles == cal.profiles
    assert (
        again.cold({"a": -2.0}, "midday", None).score == cal.cold({"a": -2.0}, "midday", None).score
    )


def test_likeness_weighs_the_alike_instrument():
    known = {"A": Profile(1e-4, 300.0, 2.0), "B": Profile(1e-2, 30.0, 20.0)}
    w = likeness(Profile(1.2e-4, 250.0, 2.5), known)
    assert w["A"] > 0.9 and abs(sum(w.values()) - 1) < 1e-12
    assert likeness(None, known) == {"A": 0.5, "B": 0.5}
    # nothing alike within many bandwidths: every instrument the same, never a division by 0
    assert likeness(Profile(1e300, 1e300, 1e300), known) == {"A": 0.5, "B": 0.5}


def test_mixture_norms_widen_when_the_centers_disagree():
    a = FactNorms({"x": 0.0}, {"x": 1.0}, 10)
    b = FactNorms({"x": -4.0}, {"x": 1.0}, 10)
    m = mixture_norms([(a, 0.5), (b, 0.5)])
    assert m is not None
    assert m.center["x"] == pytest.approx(-2.0)
    assert m.scale["x"] == pytest.approx(np.sqrt(1 + 4))
    assert m.windows == 20


def test_adapted_norms_move_from_the_prior_to_the_own_windows():
    prior = FactNorms({f: 0.0 for f in FACTS}, {f: 1.0 for f in FACTS}, 30)
    own = _windows("N", -8.0, 2, 3)
    assert adapted_norms(prior, own) is prior  # too few own windows: the prior alone
    many = _windows("N", -8.0, 60, 3)
    norms = adapted_norms(prior, many)
    w = own_weight(60)
    assert w == pytest.approx(60 / 64)
    for f in FACTS:
        assert norms.center[f] == pytest.approx(w * FactNorms.fit(many).center[f], rel=1e-6)


def test_weighted_quantile_with_one_group_is_the_calibration_threshold():
    scores = [float(x) for x in np.random.default_rng(0).gamma(3.0, size=57)]
    cal = Calibration.fit(scores, far=0.05, method="test")
    assert weighted_quantile_threshold([(scores, 1.0)], 0.05) == cal.threshold
    # a second group with all the weight decides alone
    own = [100.0 + k for k in range(40)]
    assert weighted_quantile_threshold([(scores, 0.0), (own, 1.0)], 0.05) == 137.0


def test_depth_and_unseen_instruments_are_cold():
    cal = _calibration()
    assert cal.calibrated_key("A") == "A"
    assert cal.calibrated_key("A", 10) == "A"
    assert cal.calibrated_key("A", 1) is None  # the same instrument's level-1 feed
    assert cal.cold_key("A", 1) == "A@1"
    assert cal.calibrated_key("N", 10) is None
    assert cal.cold_key("N", 10) == "N@10"  # each depth of an unseen instrument apart too
    assert cal.cold_key("N") == "N"


def test_an_unseen_instrument_starts_pooled_by_likeness_and_adapts_to_its_own_windows():
    cal = _calibration()
    like_b = Profile(1.1e-2, 25.0, 22.0, 10)
    # its normal windows sit where B's do: pooled by likeness, they read as B's would
    first = cal.cold({f: -6.0 for f in FACTS}, "midday", like_b)
    assert first.explain["status"] == "pooled"
    assert first.explain["prior"]["B"] > 0.9
    assert not cal.is_alert(first.score, first.threshold)
    # an instrument like no other, whose normal windows sit at -12: alerts at first ...
    odd = Profile(1e-3, 100.0, 6.0, 10)
    clean = _windows("N", -12.0, 40, 4)
    state = ColdState("N")
    alerts_before = [_alert(cal, cal.cold(z, "midday", odd, None)) for z in clean[20:]]
    assert sum(alerts_before) >= 15
    # ... and not once 20 of its own windows stand behind its norms and threshold
    for z in clean[:20]:
        state.observe(z, odd)
    verdicts = [cal.cold(z, "midday", odd, state) for z in clean[20:]]
    assert sum(_alert(cal, v) for v in verdicts) <= 2
    assert verdicts[0].explain["status"] == "adapted"
    assert verdicts[0].explain["own_windows"] == 20
    assert verdicts[0].explain["threshold_windows"] == {"reference": cal.n_normal, "own": 20}
    # a window far below its usual still alerts
    assert _alert(cal, cal.cold({f: -30.0 for f in FACTS}, "midday", odd, state))


def _score(z: dict[str, float], bucket: str = "midday") -> WindowScore:
    return WindowScore(
        score=1.0,
        p_value=None,
        alert=False,
        detail={
            "bucket": bucket,
            "facts": {f: {"z": v} for f, v in z.items()},
            "profile": Profile(1e-3, 100.0, 6.0, 10).as_dict(),
        },
    )


def test_cold_starts_keep_only_normal_midday_windows_of_cold_instruments():
    cal = _calibration()
    cold = ColdStarts()
    seen = cold.apply(_score({f: -2.0 for f in FACTS}), "A", 10, cal)
    assert seen.score == 1.0 and not cold.states  # calibrated: unchanged
    unlike = _windows("N", -12.0, 4, 9)
    out = cold.apply(_score(unlike[0]), "N", 10, cal)
    assert out.detail["calibration"]["status"] == "pooled"
    assert out.detail["calibration"]["key"] == "N@10"
    # it alerts against the prior, and is kept: the first windows of an instrument unlike the
    # calibrated ones would all alert, and judged by the prior none would ever be kept
    assert out.alert and cold.states["N@10"].count == 1
    cold.apply(_score(unlike[1], "close"), "N", 10, cal)
    assert cold.states["N@10"].count == 1  # a window at the close is not kept
    for z in unlike[2:]:
        cold.apply(_score(z), "N", 10, cal)
    assert cold.states["N@10"].count == 3
    # from then on a window far outside its own windows (a manipulation) is not learnt
    far = cold.apply(_score({f: -40.0 for f in FACTS}), "N", 10, cal)
    assert far.alert and not far.detail["calibration"]["kept"]
    assert cold.states["N@10"].count == 3
    usual = cold.apply(_score(_windows("N", -12.0, 1, 10)[0]), "N", 10, cal)
    assert usual.detail["calibration"]["kept"] and cold.states["N@10"].count == 4
    # the level-1 feed of a calibrated instrument is kept apart
    cold.apply(_score({f: -2.0 for f in FACTS}), "A", 1, cal)
    assert cold.states["A@1"].count == 1
    # a window without a score (skipped, degraded) passes as it is
    skipped = WindowScore(score=None, p_value=None, alert=False)
    assert cold.apply(skipped, "N", 10, cal) is skipped


def test_feed_depth_is_instrument_metadata_and_keys_the_fork_cache():
    assert Instrument("X", feed_depth=5).feed_depth == 5
    assert Instrument.from_dict(Instrument("X", feed_depth=1).as_dict()).feed_depth == 1
    with pytest.raises(ValueError, match="feed depth"):
        Instrument("X", feed_depth=0)
    common = dict(
        instrument="GOOG",
        start_ns=0,
        end_ns=1,
        generator_version="v",
        rollouts=16,
        seed=0,
        history_orders=256,
        max_depth=10,
        tick_size=100,
        open_mid=1.0,
    )
    keys = {simcache.key(**common, feed_depth=d) for d in (None, 1, 5, 10)}
    assert len(keys) == 4


def test_the_store_keeps_each_decisions_threshold_and_calibration(tmp_path):
    from alerts.store import AlertStore
    from surveillance.detection.pipeline import WindowDecision

    cal = _calibration()
    verdict = ColdStarts().apply(_score({f: -2.0 for f in FACTS}), "N", 10, cal)
    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.create_schema()
    decision = WindowDecision("N", 0, 10, "m", 5, "event", verdict)
    assert store.put_decision(decision=decision)
    (row,) = store.decisions()
    assert row["threshold"] == pytest.approx(verdict.threshold)
    assert row["calibration"]["status"] == "pooled"
    assert row["calibration"]["threshold_windows"] == {"reference": cal.n_normal, "own": 0}
    store.close()


def test_a_replay_of_a_shallower_feed_reads_it_cold_and_adapts_in_window_order(lobster_dir):
    """The level-1 GOOG feed against a calibration that knows GOOG at level 10: its windows are
    read cold (key GOOG@1), pooled first, adapting once three normal windows stand behind them;
    the level-10 feed of the same minutes stays calibrated."""
    from dataclasses import replace as dc_replace

    from simulator.lobster import load_lobster
    from simulator.normalized import lobster_to_frame
    from surveillance.cli.wiring import make_scorer
    from surveillance.detection.settings import DetectionSettings
    from surveillance.replay import ReplayInput, replay, rescore, session_bounds_of
    from tests.conftest import lobster_zip

    open_ns, minute = (9 * 3600 + 30 * 60) * 10**9, 60 * 10**9
    scorer, _ = make_scorer(
        DetectionSettings(window_ns=5 * minute, rollouts=4, seed=0, generator="empirical")
    )
    assert scorer.calibration is not None and "GOOG" in scorer.calibration.norms
    goog10 = Profile(1.7e-5, 400.0, 30.0, 10).as_dict()
    scorer.calibration = dc_replace(scorer.calibration, profiles={"GOOG": goog10})

    def day(levels: int, minutes: int = 65) -> ReplayInput:
        path = lobster_zip(lobster_dir, "GOOG", levels)
        lobster = load_lobster(path)
        frame = lobster_to_frame(lobster)
        frame = frame[frame.ts_ns < open_ns + minutes * minute].reset_index(drop=True)
        return ReplayInput(path, "GOOG", frame, open_ns, None, meta=lobster.instrument)

    shallow = [r for r in replay([day(1)], scorer).records if r["score"] is not None]
    statuses = [r["detail"]["calibration"]["status"] for r in shallow]
    assert {r["detail"]["calibration"]["key"] for r in shallow} == {"GOOG@1"}
    assert statuses[0] == "pooled" and "adapting" in statuses
    owns = [r["detail"]["calibration"]["own_windows"] for r in shallow]
    assert owns == sorted(owns) and owns[0] == 0  # its own windows only accumulate
    assert all(r["detail"]["feed_depth"] == 1 for r in shallow)
    deep = [r for r in replay([day(10, 15)], scorer).records if r["score"] is not None]
    assert {r["detail"]["calibration"]["status"] for r in deep} == {"calibrated"}
    # ``surveillance rescore`` with the same calibration reads the cold feed as the replay did
    level1 = day(1)
    records = replay([level1], scorer).records
    again = rescore(records, scorer.calibration, session_bounds_of(level1))
    for a, b in zip(records, again, strict=True):
        assert (a["score"], a["alert"], a["threshold"]) == (b["score"], b["alert"], b["threshold"])
        if a["score"] is not None:
            assert a["detail"]["calibration"] == b["detail"]["calibration"]


def test_a_touch_only_feed_is_compared_with_the_rollout_orders_it_would_show():
    from simulator.trajectory import Trajectory

    # bid 100 x 5, ask 110 x 5 at the start; then: an add deep on the bid (touch as it was),
    # an add at the bid (shares 5 -> 8), a cancel that found nothing, an ask that improves it
    t = Trajectory(
        0,
        60 * 10**9,
        100,
        110,
        ts_ns=np.array([1, 2, 3, 4]),
        type=np.array([1, 1, 2, 0]),
        qty=np.array([4, 3, 2, 1]),
        aggressive=np.zeros(4, bool),
        best_bid=np.array([100, 100, 100, 100]),
        best_ask=np.array([110, 110, 110, 108]),
        bid_qty=np.array([5, 8, 8, 8]),
        ask_qty=np.array([5, 5, 5, 1]),
        qty0=(5, 5),
        order_id=np.array([1, 2, 0, 3]),
    )
    seen = t.touch_view()
    assert list(seen.ts_ns) == [2, 4]
    assert list(seen.order_id) == [2, 3]
    # without touch quantities only a moved best price is seen
    bare = Trajectory(
        0, 60 * 10**9, 100, 110, t.ts_ns, t.type, t.qty, t.aggressive, t.best_bid, t.best_ask
    )
    assert list(bare.touch_view().ts_ns) == [4]


def test_a_profile_reads_only_two_sided_books():
    from simulator.book import EMPTY_ASK_PRICE
    from simulator.trajectory import Trajectory
    from surveillance.detection.coldstart import profile_of

    minute = 60 * 10**9
    t = Trajectory(
        0,
        2 * minute,
        10_000,
        10_200,
        ts_ns=np.array([1, 2, 3]),
        type=np.array([1, 0, 2]),
        qty=np.array([1, 1, 1]),
        aggressive=np.zeros(3, bool),
        best_bid=np.array([10_000, 10_000, 10_000]),
        best_ask=np.array([EMPTY_ASK_PRICE, 10_200, 10_200]),
        tick_size=100,
    )
    p = profile_of(t, feed_depth=5)
    assert p == Profile(round(100 / 10_100, 9), 1.5, 2.0, 5)


def test_a_worker_taking_over_a_cold_instrument_restores_its_windows_from_the_store(tmp_path):
    """Decisions stored by one worker, the state rebuilt by another from the store: its next
    decision is the one the first worker would have made."""
    from alerts.store import AlertStore
    from surveillance.detection.pipeline import WindowDecision

    cal = _calibration()
    store = AlertStore(f"sqlite:///{tmp_path / 'a.db'}")
    store.create_schema()
    first = ColdStarts()
    windows = _windows("N", -12.0, 8, 7)
    for k, z in enumerate(windows[:7]):
        verdict = first.apply(_score(z, "close" if k == 2 else "midday"), "N", 10, cal)
        store.put_decision(decision=WindowDecision("N", k, k + 1, "m", 5, "event", verdict))
    second = ColdStarts()
    state = second.restore("N@10", store.calibrations("N", "m"))
    assert state.count == first.states["N@10"].count >= 3
    assert state.windows == first.states["N@10"].windows
    assert store.calibrations("N", "another model") == []
    a = first.apply(_score(windows[7]), "N", 10, cal)
    b = second.apply(_score(windows[7]), "N", 10, cal)
    assert (a.score, a.threshold, a.alert) == (b.score, b.threshold, b.alert)
    store.close()


def test_the_benchmark_reads_a_left_out_instrument_with_its_morning_in_time_order():
    """``evaluate.rescore``: an instrument the calibration never saw is read cold, with its
    calibration-span windows that ended before each held-out window, kept as the worker keeps
    them; its scores are put on the calibration's threshold scale (alerts unchanged)."""
    from surveillance.studies.evaluate import VariantScore, cold_summary, rescore

    cal = _calibration()
    minute = 60 * 10**9
    prof = Profile(1e-3, 100.0, 6.0, 10).as_dict()

    def row(k: int, z: dict[str, float], variant: str = "clean") -> VariantScore:
        start = (10 * 60 + 25 * k) * minute
        return VariantScore(
            "N",
            start,
            variant,
            None if variant == "clean" else "moderate",
            {"simulation_uncalibrated": 1.0},
            [],
            fact_z=dict(z),
            end_ns=start + 25 * minute,
            feed_depth=10,
            profile=prof,
        )

    morning = [row(k, z) for k, z in enumerate(_windows("N", -12.0, 10, 11))]
    held = [row(12, z) for z in _windows("N", -12.0, 1, 12)]
    held.append(row(12, {f: -40.0 for f in FACTS}, "spoofing"))
    rescore(held, cal, morning)
    assert all(r.cold is not None and r.cold["own_windows"] == 10 for r in held)
    clean, spoof = held
    assert not cal.is_alert(clean.scores["simulation"])
    assert cal.is_alert(spoof.scores["simulation"])
    summary = cold_summary(held, cal)["N"]
    assert summary["false_alarm_rate"] == 0.0 and summary["spoofing/moderate"]["auc"] == 1.0
    # the first window's view: no own window, the prior alone, and the clean window alerts
    rescore(held, cal, morning, own_windows=0)
    assert clean.cold["own_windows"] == 0 and clean.cold["status"] == "pooled"
    assert cal.is_alert(clean.scores["simulation"])


def test_a_level_1_simulation_reads_the_rollouts_touch_only_view():
    from simulator.trajectory import Trajectory
    from surveillance.detection.scoring import DetectionConfig, Simulation

    minute = 60 * 10**9
    n = 240
    rng = np.random.default_rng(0)
    deep = rng.random(n) < 0.6  # most orders rest away from the touch: the touch stays
    bid_qty = np.where(deep, 500, 500 + rng.integers(1, 300, n))
    t = Trajectory(
        0,
        2 * minute,
        10_000,
        10_200,
        ts_ns=np.sort(rng.integers(1, 2 * minute, n)),
        type=rng.integers(0, 3, n),
        qty=rng.integers(1, 500, n),
        aggressive=np.zeros(n, bool),
        best_bid=np.full(n, 10_000),
        best_ask=np.full(n, 10_200),
        bid_qty=bid_qty,
        ask_qty=np.full(n, 500),
        qty0=(500, 500),
        order_id=np.arange(1, n + 1),
    )
    config = DetectionConfig()
    full = Simulation.of([t, t, t], config, None)
    touch = Simulation.of([t, t, t], config, None, feed_depth=1)
    seen = len(t.touch_view().ts_ns)
    assert 0 < seen < n
    assert touch.sims[0] is t  # the rollouts are kept whole (the cache stores them)
    # one inter-arrival sample per order after the first: every order, or the touch's
    assert len(full.sim_facts[0]["inter_arrival"][0]) == n - 1
    assert len(touch.sim_facts[0]["inter_arrival"][0]) == seen - 1


def test_forgetting_an_instrument_drops_each_of_its_depths_only() -> None:
    from surveillance.detection.coldstart import ColdStarts, ColdState

    cold = ColdStarts()
    for key in ("X", "X@1", "X@5", "XY@1", "Y"):
        cold.states[key] = ColdState(key)
    cold.forget("X")
    assert sorted(cold.states) == ["XY@1", "Y"]
