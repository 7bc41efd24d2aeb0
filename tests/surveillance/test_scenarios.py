"""Scenarios: a family of facts scored apart, against a threshold of its own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surveillance.detection.detector import (
    OMNIBUS,
    SCENARIOS,
    Calibration,
    FactNorms,
    Scenario,
)

SWEEPS = SCENARIOS["aggressive_trading"]
OTHERS = tuple(f"fact{i}" for i in range(12))


def normal_windows(n: int, seed: int = 0) -> list[tuple[str, float, dict[str, float]]]:
    """Normal windows of two instruments: the sweep facts' z about N(-1, 1), the others'
    heavy-tailed (Student's t, 2 degrees of freedom), as a real afternoon's order sizes and
    rates fall far short of the simulation now and then."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        z = {f: float(rng.normal(-1.0, 1.0)) for f in SWEEPS}
        z |= {f: float(rng.standard_t(2) - 1.0) for f in OTHERS}
        out.append(("AAA" if k % 2 else "BBB", 0.0, z))
    return out


def shifted(z: dict[str, float], facts: tuple[str, ...], by: float) -> dict[str, float]:
    return {f: v - by if f in facts else v for f, v in z.items()}


def test_a_campaign_on_the_sweep_facts_alone_alerts_through_its_scenario() -> None:
    """The sweep facts each 3.5 spreads short: too little for the omnibus threshold (8, set by
    calibration windows that fall far short on other facts), enough for the scenario's (4)."""
    norms = FactNorms({f: 0.0 for f in (*OTHERS, *SWEEPS)}, {f: 1.0 for f in (*OTHERS, *SWEEPS)})
    cal = Calibration(8.0, 0.05, 20, "test", norms={"AAA": norms})
    cal.scenarios["aggressive_trading"] = Scenario(list(SWEEPS), 4.0)
    clean = {f: -0.5 for f in (*OTHERS, *SWEEPS)}
    campaign = shifted(clean, SWEEPS, 3.0)
    parts = cal.components(campaign, "AAA")
    assert parts[OMNIBUS] is not None and parts[OMNIBUS] < cal.threshold
    assert parts["aggressive_trading"] == pytest.approx(3.5 * 3**0.25)
    assert cal.score(0.0, campaign, "AAA") == pytest.approx(3.5 * 3**0.25 * 8.0 / 4.0)
    assert cal.is_alert(cal.score(0.0, campaign, "AAA"))
    assert not cal.is_alert(cal.score(0.0, clean, "AAA"))
    # the same shortfall on other facts moves the omnibus score only
    elsewhere = shifted(clean, OTHERS[:3], 3.0)
    assert cal.components(elsewhere, "AAA")["aggressive_trading"] == parts_of(cal, clean)
    assert not cal.is_alert(cal.score(0.0, elsewhere, "AAA"))
    # without the scenario, the campaign passes unseen
    cal.scenarios.clear()
    assert not cal.is_alert(cal.score(0.0, campaign, "AAA"))


def parts_of(cal: Calibration, z: dict[str, float]) -> float | None:
    return cal.components(z, "AAA")["aggressive_trading"]


def test_fit_normal_fits_scenarios_only_when_asked() -> None:
    windows = normal_windows(40)
    assert Calibration.fit_normal(windows, far=0.05, method="t").scenarios == {}
    assert set(
        Calibration.fit_normal(windows, far=0.05, method="t", scenarios=SCENARIOS).scenarios
    ) == set(SCENARIOS)
    assert Calibration.fit_normal(windows, far=0.05, method="t", scenarios={}).scenarios == {}
    # a detection config without the scenario's facts has no scenario
    bare = [(i, s, {f: v for f, v in z.items() if f in OTHERS}) for i, s, z in windows]
    assert Calibration.fit_normal(bare, far=0.05, method="t", scenarios=SCENARIOS).scenarios == {}


def test_the_score_clears_the_threshold_exactly_when_a_component_clears_its_own() -> None:
    windows = normal_windows(40, seed=1)
    cal = Calibration.fit_normal(windows, far=0.05, method="test", scenarios=SCENARIOS)
    sc = cal.scenarios["aggressive_trading"]
    rng = np.random.default_rng(2)
    for _ in range(200):
        z = {f: float(rng.normal(-1.5, 2.5)) for f in (*OTHERS, *SWEEPS)}
        parts = cal.components(z, "BBB")
        either = parts[OMNIBUS] > cal.threshold or parts["aggressive_trading"] > sc.threshold  # type: ignore[operator]
        assert cal.is_alert(cal.score(0.0, z, "BBB")) == either


def test_the_omnibus_score_and_the_scenario_share_the_false_alarm_rate() -> None:
    """100 normal windows at 5%: the omnibus threshold and the scenario's each take 2.5%, so
    at most two windows pass each and at most four (within five) pass either."""
    windows = normal_windows(100, seed=3)
    cal = Calibration.fit_normal(windows, far=0.05, method="test", scenarios=SCENARIOS)
    assert cal.far == 0.05 and "each at 0.025" in cal.note
    alone = Calibration.fit_normal(windows, far=0.025, method="test", scenarios={})
    assert cal.threshold == alone.threshold
    at_five = Calibration.fit_normal(windows, far=0.05, method="test", scenarios={})
    assert at_five.threshold < cal.threshold  # the omnibus score alone keeps its whole share
    assert sum(x > cal.threshold for x in alone.normal_scores) <= 2
    above = sum(x > cal.threshold for x in cal.normal_scores)
    assert 2 < above <= 4  # the scenario flagged windows the omnibus threshold did not
    assert len(cal.normal_scores) == 100


def test_too_few_normal_windows_to_share_the_rate_means_no_scenarios() -> None:
    """Below (k + 1) / far windows each threshold would be the largest score seen, and a new
    normal window would pass one of the two about twice as often as the target."""
    few = Calibration.fit_normal(normal_windows(39), far=0.05, method="t", scenarios=SCENARIOS)
    assert few.scenarios == {} and "no scenarios" in few.note
    assert set(
        Calibration.fit_normal(
            normal_windows(40), far=0.05, method="t", scenarios=SCENARIOS
        ).scenarios
    ) == {"aggressive_trading"}


def test_windows_without_a_score_do_not_count() -> None:
    windows = normal_windows(40)
    windows.append(("AAA", 0.0, {}))  # no facts: no score
    cal = Calibration.fit_normal(windows, far=0.05, method="t", scenarios=SCENARIOS)
    assert cal.n_normal == 40 == len(cal.normal_scores)


def test_a_calibration_saved_before_scenarios_scores_with_the_omnibus_alone(tmp_path) -> None:
    windows = normal_windows(40, seed=4)
    cal = Calibration.fit_normal(windows, far=0.05, method="test", scenarios=SCENARIOS)
    path = tmp_path / "cal.json"
    cal.save(path)
    again = Calibration.load(path)
    assert again.scenarios == cal.scenarios
    campaign = shifted(windows[5][2], SWEEPS, 4.0)
    assert again.score(0.0, campaign, "AAA") == cal.score(0.0, campaign, "AAA")
    data = json.loads(path.read_text())
    del data["scenarios"]
    path.write_text(json.dumps(data))
    old = Calibration.load(path)
    assert old.scenarios == {}
    assert old.score(0.0, campaign, "AAA") == cal.components(campaign, "AAA")[OMNIBUS]


def test_a_replay_rescored_records_each_component_and_alerts_through_the_scenario() -> None:
    from surveillance.replay import rescore

    norms = FactNorms({f: 0.0 for f in (*OTHERS, *SWEEPS)}, {f: 1.0 for f in (*OTHERS, *SWEEPS)})
    cal = Calibration(8.0, 0.05, 20, "test", norms={"AAA": norms})
    cal.scenarios["aggressive_trading"] = Scenario(list(SWEEPS), 4.0)
    clean = {f: -0.5 for f in (*OTHERS, *SWEEPS)}
    records = [
        {
            "instrument": "AAA",
            "window_start_ns": 0,
            "window_end_ns": 1,
            "score": 1.0,
            "alert": False,
            "facts": {f: {"z": v} for f, v in z.items()},
            "detail": {"raw_score": 1.0},
        }
        for z in (clean, shifted(clean, SWEEPS, 3.0))
    ]
    quiet, campaign = rescore(records, cal, None)
    assert not quiet["alert"] and campaign["alert"]
    parts = campaign["detail"]["calibration"]["scenarios"]
    assert parts[OMNIBUS]["threshold"] == 8.0 and parts[OMNIBUS]["score"] < 8.0
    assert parts["aggressive_trading"]["threshold"] == 4.0
    assert parts["aggressive_trading"]["score"] > 4.0
    assert campaign["score"] > campaign["threshold"] == 8.0


def test_the_benchmarks_calibration_fits_scenarios_only_when_asked() -> None:
    from surveillance.studies.evaluate import VariantScore, calibrate

    normal = [
        VariantScore(
            inst,
            60_000_000_000 * 25 * k,
            "clean",
            None,
            {"simulation_uncalibrated": 0.0, "simulation": 0.0},
            [],
            fact_z=z,
        )
        for k, (inst, _, z) in enumerate(normal_windows(40))
    ]
    with_them = calibrate(normal, [], far=0.05, method="t", scenarios=SCENARIOS)
    without = calibrate(normal, [], far=0.05, method="t")
    assert set(with_them.scenarios) == set(SCENARIOS) and without.scenarios == {}
    # the omnibus score alone keeps the whole false-alarm rate: its threshold is lower
    assert without.threshold <= with_them.threshold


def test_the_benchmark_scores_each_component_and_curves_rank_by_each() -> None:
    """``calibrate`` with scenarios: every result carries the omnibus and the scenario score
    beside the calibrated one (another calibration's are dropped), a sweep-only campaign
    alerts through the scenario, and the curves give each component's AUC."""
    from surveillance.studies.evaluate import (
        COMPONENT_PREFIX,
        VariantScore,
        calibrate,
        detection_curves,
    )

    minute = 60_000_000_000

    def row(k: int, inst: str, variant: str, z: dict[str, float]) -> VariantScore:
        return VariantScore(
            inst,
            25 * minute * k,
            variant,
            None if variant == "clean" else "moderate",
            {"simulation_uncalibrated": 0.0, "simulation": 0.0},
            [],
            fact_z=z,
            end_ns=25 * minute * (k + 1),
        )

    normal = [row(k, inst, "clean", z) for k, (inst, _, z) in enumerate(normal_windows(60))]
    held = [row(100 + k, "AAA", "clean", z) for k, (_, _, z) in enumerate(normal_windows(6, 9))]
    campaigns = [
        row(
            r.window_start_ns // (25 * minute), "AAA", "pump_and_dump", shifted(r.fact_z, SWEEPS, 6)
        )
        for r in held
    ]
    results = [*held, *campaigns]
    results[0].scores[COMPONENT_PREFIX + "stale"] = 1.0
    cal = calibrate(normal, results, far=0.05, method="t", scenarios=SCENARIOS)
    assert set(cal.scenarios) == {"aggressive_trading"}
    for r in results:
        parts = {k for k in r.scores if k.startswith(COMPONENT_PREFIX)}
        assert parts == {COMPONENT_PREFIX + "omnibus", COMPONENT_PREFIX + "aggressive_trading"}
        assert r.scores["simulation"] >= r.scores[COMPONENT_PREFIX + "omnibus"]  # type: ignore[operator]
    assert all(cal.is_alert(r.scores["simulation"]) for r in campaigns)
    point = detection_curves(results, cal)["AAA"]["typologies"]["pump_and_dump"]["points"][0]
    assert point["tpr"] == 1.0 and point["component_auc"]["aggressive_trading"] == 1.0
    assert set(point["component_auc"]) == {"omnibus", "aggressive_trading"}
