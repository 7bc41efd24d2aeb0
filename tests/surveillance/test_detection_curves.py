"""Detection-limit curves and numeric campaign intensities of the manipulation benchmark."""

from __future__ import annotations

import pytest

from simulator.manipulation import Typology
from surveillance.detection.detector import Calibration
from surveillance.studies.evaluate import (
    DETECTORS,
    EvaluationConfig,
    IntensityError,
    VariantScore,
    _campaign_seed,
    detection_curves,
    intensity_scale,
)


def test_intensity_labels_are_named_levels_or_positive_scales() -> None:
    assert intensity_scale("low") == 0.5
    assert intensity_scale("high") == 2.0
    assert intensity_scale("0.25") == 0.25
    assert intensity_scale("3") == 3.0
    for bad in ("extreme", "0", "-1", "nan", "inf", ""):
        with pytest.raises(IntensityError):
            intensity_scale(bad)
    with pytest.raises(IntensityError):  # refused with the config, before any fork
        EvaluationConfig(intensities=("moderate", "loud"))


def test_a_campaign_seed_salt_gives_other_campaigns_and_zero_keeps_the_old_ones() -> None:
    import zlib

    old = zlib.crc32(f"0|AMZN|5|{Typology.SPOOFING}|moderate".encode())
    assert _campaign_seed(0, 0, "AMZN", 5, Typology.SPOOFING, "moderate") == old
    assert _campaign_seed(7, 0, "AMZN", 5, Typology.SPOOFING, "moderate") != old
    assert _campaign_seed(7, 0, "AMZN", 5, Typology.SPOOFING, "moderate") != _campaign_seed(
        8, 0, "AMZN", 5, Typology.SPOOFING, "moderate"
    )


def _window(instrument: str, variant: str, intensity: str | None, score: float) -> VariantScore:
    return VariantScore(instrument, 0, variant, intensity, dict.fromkeys(DETECTORS, score), [])


def test_curves_give_auc_and_calibrated_tpr_per_intensity_and_the_detection_limit() -> None:
    # threshold 10: the 95% quantile of 20 normal scores 0..19 is 18; fitted by hand below
    cal = Calibration.fit([float(x) for x in range(20)], far=0.05, method="test")
    assert cal.threshold == 18.0
    results = [_window("A", "clean", None, x) for x in (1.0, 2.0, 3.0, 19.0)]
    # 0.25: below every clean window but the top one; 0.5: above all clean but below the
    # threshold but one; 1 and 2: above every clean window and the threshold
    results += [_window("A", "pump_and_dump", "0.25", x) for x in (0.5, 2.5)]
    results += [_window("A", "pump_and_dump", "low", x) for x in (18.5, 17.0)]
    results += [_window("A", "pump_and_dump", "moderate", x) for x in (20.0, 30.0)]
    results += [_window("A", "pump_and_dump", "2", x) for x in (40.0, 50.0)]
    results += [_window("B", "clean", None, x) for x in (1.0, 2.0)]
    results += [_window("B", "pump_and_dump", "moderate", x) for x in (0.0, 0.5)]
    curves = detection_curves(results, cal)
    a = curves["A"]
    assert a["clean_windows"] == 4
    assert a["false_alarm_rate"] == 0.25  # 19 > 18
    points = a["typologies"]["pump_and_dump"]["points"]
    assert [p["scale"] for p in points] == [0.25, 0.5, 1.0, 2.0]
    assert [p["intensity"] for p in points] == ["0.25", "low", "moderate", "2"]
    assert points[0]["auc"] == pytest.approx((0 + 2) / 8)  # 0.5 beats none, 2.5 beats 1 and 2
    assert points[1]["auc"] == pytest.approx(6 / 8)
    assert [p["tpr"] for p in points] == [0.0, 0.5, 1.0, 1.0]
    assert a["typologies"]["pump_and_dump"]["min_scale_auc"] == 1.0
    assert a["typologies"]["pump_and_dump"]["min_scale_tpr"] == 0.5
    # B: never ranked above its clean windows, never alerted: no detectable intensity
    b = curves["B"]["typologies"]["pump_and_dump"]
    assert b["points"][0]["auc"] == 0.0
    assert b["min_scale_auc"] is None and b["min_scale_tpr"] is None


def test_a_curve_that_dips_again_is_detectable_only_above_the_dip() -> None:
    cal = Calibration.fit([float(x) for x in range(20)], far=0.05, method="test")
    results = [_window("A", "clean", None, x) for x in (1.0, 2.0)]
    results += [_window("A", "spoofing", "0.25", 30.0)]  # a lucky low point
    results += [_window("A", "spoofing", "0.5", 0.0)]
    results += [_window("A", "spoofing", "1", 30.0)]
    curve = detection_curves(results, cal)["A"]["typologies"]["spoofing"]
    assert curve["min_scale_auc"] == 1.0
    assert curve["min_scale_tpr"] == 1.0


def test_evaluate_command_prints_and_writes_the_curves(
    lobster_dir, tmp_path, capsys: pytest.CaptureFixture
) -> None:
    import json

    from surveillance.cli import main
    from tests.conftest import lobster_zip

    args = [
        "evaluate",
        "--data",
        str(lobster_zip(lobster_dir, "AMZN", 1)),
        "--start",
        "10:00",
        "--end",
        "10:20",
        "--window",
        "10m",
        "--stride",
        "10m",
        "--calibration-span",
        "09:40-10:00",
        "--calibration-stride",
        "3m",
        "--rollouts",
        "4",
        "--generator",
        "empirical",
        "--typologies",
        "pump_and_dump",
        "--intensities",
        "0.5,moderate",
        "--campaign-seed",
        "3",
        "--curves",
    ]
    out = tmp_path / "eval.json"
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "detection-limit curves" in text
    assert "pump_and_dump" in text and "0.5:" in text and "1:" in text
    curves = json.loads(out.read_text())["summary"]["curves"]["AMZN"]
    points = curves["typologies"]["pump_and_dump"]["points"]
    assert [p["scale"] for p in points] == [0.5, 1.0]
    assert all(p["n"] == 2 and 0.0 <= p["auc"] <= 1.0 for p in points)
    assert main([*args[:-1], "--intensities", "0.5,wild"]) != 0
    assert "wild" in capsys.readouterr().err


def test_cached_only_scores_the_cached_windows_and_never_forks(lobster_dir, tmp_path) -> None:
    from simulator.generators import EmpiricalGenerator
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.studies.evaluate import evaluate_day
    from surveillance.studies.simcache import SimCache
    from tests.conftest import lobster_zip

    class Exploding:
        def begin(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise AssertionError("a cached-only run must not fork")

        next_orders = begin

    path = lobster_zip(lobster_dir, "AMZN", 1)
    minute = 60 * 10**9
    detection = DetectionConfig(window_ns=10 * minute, rollouts=4)
    first = EvaluationConfig(
        detection=detection,
        start_ns=600 * minute,
        end_ns=610 * minute,
        stride_ns=10 * minute,
        intensities=("high",),
        typologies=(Typology.PUMP_AND_DUMP,),
    )
    cache = SimCache(tmp_path)
    evaluate_day(path, EmpiricalGenerator(), first, cache=cache, generator_version="e1")
    wider = EvaluationConfig(
        detection=detection,
        start_ns=600 * minute,
        end_ns=630 * minute,
        stride_ns=10 * minute,
        intensities=("high",),
        typologies=(Typology.PUMP_AND_DUMP,),
        cached_only=True,
    )
    said: list[str] = []
    scored = evaluate_day(
        path,
        Exploding(),  # type: ignore[arg-type]
        wider,
        cache=SimCache(tmp_path),
        generator_version="e1",
        progress=said.append,
    )
    assert {r.window_start_ns for r in scored} == {600 * minute}
    assert len(scored) == 2  # its clean window and one campaign
    assert sum("left out" in m for m in said) == 2
    with pytest.raises(ValueError, match="simulation cache"):
        evaluate_day(path, EmpiricalGenerator(), wider)
