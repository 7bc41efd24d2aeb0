"""The detector's scoring, calibration and baselines on windows with known ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from surveillance.cli.wiring import bundled_calibration
from surveillance.detection.detector import (
    DETECTION_FACTS,
    POOLED,
    Calibration,
    FactNorms,
    historical_diff,
    score_against,
    spread_zscore,
    window_facts,
)
from surveillance.detection.metrics import NS_PER_MIN, TailCut, Trajectory


def window(
    rng: np.random.Generator, *, spread_mean: float = 3.0, cancel: float = 0.45, n: int = 1500
) -> Trajectory:
    """A synthetic 25-minute window: Poisson arrivals, a random-walk mid, a noisy spread."""
    end = 25 * NS_PER_MIN
    ts = np.sort(rng.integers(0, end, n))
    kind = rng.choice([0, 1, 2], size=n, p=[(1 - cancel) / 2, (1 - cancel) / 2, cancel])
    qty = rng.geometric(1 / 100, n)
    mid = 5_800_000 + np.cumsum(rng.choice([-100, 0, 100], n, p=[0.01, 0.98, 0.01]))
    spread = rng.poisson(spread_mean, n) + 1
    bid = mid - (spread // 2) * 100
    ask = bid + spread * 100
    return Trajectory(
        0, end, int(bid[0]), int(ask[0]), ts, kind, qty, rng.random(n) < 0.05, bid, ask
    )


def test_normal_windows_get_roughly_uniform_p_values() -> None:
    rng = np.random.default_rng(1)
    p_values = [
        score_against(window(rng), [window(rng) for _ in range(12)]).p_value for _ in range(16)
    ]
    assert np.mean(np.array(p_values) <= 0.1) <= 0.35
    assert np.mean(p_values) > 0.3


@pytest.mark.parametrize(
    ("change", "fact"),
    [
        ({"spread_mean": 6.0}, "spread"),
        ({"cancel": 0.7}, "cancel_ratio"),
    ],
)
def test_a_changed_market_scores_high_and_names_the_fact(change: dict, fact: str) -> None:
    rng = np.random.default_rng(2)
    sims = [window(rng) for _ in range(12)]
    normal = score_against(window(rng), sims)
    odd = score_against(window(rng, **change), sims)
    assert odd.score is not None and normal.score is not None
    # one fact of 17 moved: Stouffer's sum divides its z by sqrt(17)
    assert odd.score > normal.score + 2.5
    assert odd.p_value <= 2 / 13  # at most one of the 12 rollouts scores as high
    assert fact in odd.diverged()
    assert odd.facts[fact].ovl < odd.facts[fact].null_mean


def test_a_few_dozen_large_orders_show_in_the_tail_fact_not_in_the_densities() -> None:
    """Spoofing's footprint: 30 orders of 2,000 shares among 1,500 ordinary ones. Their share
    of the orders is small (the tail overlap stays near 1), yet far beyond what the simulated
    futures show among themselves."""
    rng = np.random.default_rng(4)
    sims = [window(rng) for _ in range(12)]
    normal = score_against(window(rng), sims)
    real = window(rng)
    limit = np.flatnonzero(real.type != 2)[:: max(1, int(np.sum(real.type != 2)) // 30)][:30]
    real.qty[limit] = 2_000
    spoofed = score_against(real, sims)
    z_tail = spoofed.facts["large_orders"].z
    assert z_tail is not None and z_tail < -10
    assert normal.facts["large_orders"].z > -3
    assert spoofed.facts["large_orders"].ovl < spoofed.facts["large_orders"].null_mean
    assert "large_orders" in spoofed.diverged()
    assert spoofed.facts["large_orders"].ovl > 0.95  # an overlap near 1, yet far out of the null


def test_the_sweep_tail_is_cut_at_a_ratio_of_one_and_the_size_tails_at_the_reference() -> None:
    """The previous real window held many large sweeps (a fifth of its marketable orders asked
    for five times the touch). The window scored has a tenth that asked for twice the touch,
    where the rollouts have none: every one of them counts as a sweep, although none is beyond
    the previous window's 95% quantile. The size tail keeps its floor: orders above the
    simulation's 99.9% quantile but below the previous window's do not count."""
    rng = np.random.default_rng(5)

    def samples(sweep: np.ndarray, size: np.ndarray) -> dict:
        return {"sweep_ratio": (sweep, None), "large_orders": (size, None)}

    def ratios(n: int, share: float, ratio: float) -> np.ndarray:
        r = rng.uniform(0.05, 1.0, n)  # at most the touch
        r[: int(share * n)] = ratio
        return np.log10(r)

    sims = [samples(ratios(400, 0.0, 1.0), rng.normal(2.0, 0.2, 2_000)) for _ in range(12)]
    reference = samples(ratios(400, 0.2, 5.0), rng.normal(3.5, 0.1, 2_000))
    real = samples(ratios(400, 0.1, 2.0), np.concatenate([rng.normal(2.0, 0.2, 1_950), [3.2] * 50]))
    verdict = score_against(real, sims, ("sweep_ratio", "large_orders"), reference)
    sweep = verdict.facts["sweep_ratio"]
    assert sweep.ovl == pytest.approx(0.9)  # 1 - |0.1 - 0|
    assert sweep.null_mean == pytest.approx(1.0)
    assert sweep.z is not None and sweep.z < -20
    assert verdict.facts["large_orders"].ovl == pytest.approx(1.0)
    assert verdict.diverged() == ["sweep_ratio"]


def test_tail_cuts_and_detection_facts() -> None:
    with pytest.raises(ValueError, match="not both or neither"):
        TailCut(quantile=0.99, at=0.0)
    with pytest.raises(ValueError, match="not both or neither"):
        TailCut()
    with pytest.raises(ValueError, match="quantile"):
        TailCut(quantile=1.0)
    rng = np.random.default_rng(6)
    facts = window_facts(window(rng))
    # the touch's move in ticks is still measured (a DetectionConfig may name it), not scored
    # by default
    assert "max_sweep" in facts and "max_sweep" not in DETECTION_FACTS
    assert set(DETECTION_FACTS) <= set(facts)


def test_scoring_needs_enough_rollouts() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="rollouts"):
        score_against(window(rng), [window(rng), window(rng)])


def test_calibration_sets_threshold_from_false_alarm_rate(tmp_path) -> None:
    scores = np.random.default_rng(4).normal(size=400)
    cal = Calibration.fit(scores.tolist(), far=0.05, method="normal windows")
    assert np.mean(scores > cal.threshold) == pytest.approx(0.05, abs=0.005)
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal
    small = Calibration.fit([1.0, 2.0, 3.0], far=0.05, method="few")
    assert small.threshold == 3.0 and "only 3" in small.note


def test_auto_finds_the_calibration_fitted_for_the_model(tmp_path) -> None:
    for name, version, scores in (
        ("calibration.json", "lmm-a", [1.0, 2.0, 3.0]),
        ("calibration-empirical.json", "empirical-b", [4.0, 5.0, 6.0]),
        ("calibration-lmm-c.json", "lmm-c", [7.0, 8.0, 9.0]),
    ):
        Calibration.fit(scores, far=0.05, method="m", model_version=version).save(tmp_path / name)
    (tmp_path / "lmm-c.json").write_text("{}")  # a checkpoint meta is not a calibration
    for version, name, threshold in (
        ("lmm-a", "calibration.json", 3.0),
        ("empirical-b", "calibration-empirical.json", 6.0),
        ("lmm-c", "calibration-lmm-c.json", 9.0),
    ):
        found = bundled_calibration(version, tmp_path)
        assert found is not None
        assert found[0].name == name and found[1].threshold == threshold
    assert bundled_calibration("lmm-d", tmp_path) is None


def test_baselines_react_to_a_wider_spread() -> None:
    rng = np.random.default_rng(5)
    history = [window_facts(window(rng)) for _ in range(6)]
    same = window_facts(window(rng))
    wide = window_facts(window(rng, spread_mean=7.0))
    assert spread_zscore(wide, history) > 3 > spread_zscore(same, history)
    assert historical_diff(wide, history) > historical_diff(same, history)
    assert historical_diff(same, []) is None and spread_zscore(same, history[:1]) is None


def test_fact_norms_weigh_facts_by_how_they_behave_on_normal_windows(tmp_path) -> None:
    rng = np.random.default_rng(3)
    # fact "bad": the simulation always misses it by a lot, with big swings; "good": N(0, 1)
    normal = [
        ("GOOG", None, {"bad": float(rng.normal(-20, 6)), "good": float(rng.normal(0, 1))})
        for _ in range(40)
    ]
    cal = Calibration.fit_normal(normal, far=0.05, method="test")
    assert set(cal.norms) == {"GOOG", POOLED}
    norms = cal.norms["GOOG"]
    assert -23 < norms.center["bad"] < -17 and 4 < norms.scale["bad"] < 8
    # a usual miss on the bad fact is not an alert; a 5-sigma drop on the good one is
    assert not cal.is_alert(cal.score(None, {"bad": -20.0, "good": 0.0}, "GOOG"))
    assert cal.is_alert(cal.score(None, {"bad": -20.0, "good": -5.0}, "GOOG"))
    # more like the simulation than usual is not anomalous: only shortfalls count
    assert cal.score(None, {"bad": 0.0, "good": 0.0}, "GOOG") == 0.0
    # an instrument the calibration never saw gets the pooled norms
    assert cal.score(None, {"good": -5.0}, "AMZN") == pytest.approx(
        FactNorms.score(cal.norms[POOLED], {"good": -5.0})
    )
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal


def test_a_fact_that_bursts_on_some_normal_windows_is_scaled_by_its_bursts() -> None:
    """Quiet on most normal windows, a burst of -6 on one in five: the MAD is 0, so the scale
    comes from the downside deviation, and a burst the size of the normal ones is not extreme."""
    values = [0.0, 0.0, -6.0, 0.0, 0.0] * 2
    norms = FactNorms.fit([{"tail": v, "flat": 0.0} for v in values])
    assert norms.center["tail"] == 0.0
    assert norms.scale["tail"] == pytest.approx(np.sqrt(36 * 2 / 10))
    assert norms.scale["flat"] == 0.5  # MIN_NORM_SCALE
    assert norms.score({"tail": -6.0, "flat": 0.0}) == pytest.approx(6 / np.sqrt(7.2))
    assert norms.score({"tail": -30.0, "flat": 0.0}) > 10


def test_too_few_normal_windows_fall_back_to_raw_scores() -> None:
    normal = [("GOOG", float(x), {"a": -1.0}) for x in range(3)]
    cal = Calibration.fit_normal(normal, far=0.05, method="test")
    assert cal.norms == {}
    assert "raw scores" in cal.note
    assert cal.score(7.0, {"a": -9.0}, "GOOG") == 7.0


def test_one_large_shortfall_outweighs_many_ordinary_ones() -> None:
    """The calibrated score is the 4-norm of the shortfalls: ten facts each 2 scales below
    their norm score less than one fact 6 scales below (under the Euclidean norm they would
    score more)."""
    names = [f"f{i}" for i in range(11)]
    norms = FactNorms({n: 0.0 for n in names}, {n: 1.0 for n in names}, 40)
    many = {n: (-2.0 if n != "f10" else 0.0) for n in names}
    one = {n: (-6.0 if n == "f10" else 0.0) for n in names}
    assert norms.power == 4.0
    assert norms.score(many) == pytest.approx(160**0.25)
    assert norms.score(one) == pytest.approx(6.0)
    assert norms.score(many) < norms.score(one)
    euclid = FactNorms(norms.center, norms.scale, 40, power=2.0)
    assert euclid.score(many) > euclid.score(one)


def test_a_calibration_file_without_the_power_is_read_as_euclidean(tmp_path) -> None:
    import json

    normal = [("GOOG", None, {"a": float(v), "b": float(-v % 3)}) for v in range(-10, 10)]
    cal = Calibration.fit_normal(normal, far=0.05, method="test")
    assert cal.norms["GOOG"].power == 4.0
    cal.save(tmp_path / "new.json")
    assert Calibration.load(tmp_path / "new.json") == cal
    data = json.loads((tmp_path / "new.json").read_text())
    for norms in data["norms"].values():
        del norms["power"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = Calibration.load(tmp_path / "old.json")
    assert old.norms["GOOG"].power == 2.0
    z = {"a": -20.0, "b": -9.0}
    expected = np.hypot(*(min(v, 0.0) for v in cal.norms["GOOG"].standardize(z).values()))
    assert old.score(None, z, "GOOG") == pytest.approx(expected)
    assert cal.score(None, z, "GOOG") < old.score(None, z, "GOOG")


def test_leave_out_drops_the_windows_that_overlap_the_one_scored() -> None:
    """Two overlapping normal windows share their orders, so they share an unusual fact.
    Scored with norms that saw its twin, each looks ordinary; with the spans, the twin is left
    out too and the threshold learns how unusual such a window is."""
    values = [0.0, 0.1, -0.1, 0.2, -0.2, 0.05, -10.0, -10.0]
    starts = [0, 100, 200, 300, 400, 500, 600, 612]
    normal = [("GOOG", None, {"a": v}) for v in values]
    spans = [(s, s + 25) for s in starts]
    plain = Calibration.fit_normal(normal, far=0.05, method="test")
    apart = Calibration.fit_normal(normal, far=0.05, method="test", spans=spans)
    assert max(apart.normal_scores) > 5 * max(plain.normal_scores)
    # the norms themselves are fitted on every window either way
    assert apart.norms == plain.norms
    with pytest.raises(ValueError, match="spans"):
        Calibration.fit_normal(normal, far=0.05, method="test", spans=spans[:-1])


def test_leave_out_falls_back_to_leave_one_out_when_overlaps_leave_too_few() -> None:
    """Windows that all overlap one another would leave no norms to score with: each window is
    then scored with the norms of all the others (plain leave-one-out), and only that window."""
    values = [0.0, 0.3, -0.2, 0.1, -4.0]
    normal = [("GOOG", None, {"a": v}) for v in values]
    together = [(10 * k, 10 * k + 100) for k in range(len(values))]  # every pair overlaps
    plain = Calibration.fit_normal(normal, far=0.05, method="test")
    crowded = Calibration.fit_normal(normal, far=0.05, method="test", spans=together)
    assert crowded.normal_scores == plain.normal_scores
    assert crowded.threshold == plain.threshold
    # one window apart from the rest: the others still fall back, it keeps its own leave-out
    mixed = [*together[:-1], (10_000, 10_100)]
    part = Calibration.fit_normal(normal, far=0.05, method="test", spans=mixed)
    assert part.normal_scores == plain.normal_scores
