"""The manipulation benchmark's command and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surveillance.cli import main
from surveillance.studies.evaluate import DETECTORS, VariantScore, roc_auc, summarize, tpr_at_fpr
from tests.conftest import lobster_zip


def test_auc_and_tpr_on_known_rankings() -> None:
    assert roc_auc([1, 2, 3], [4, 5]) == 1.0
    assert roc_auc([4, 5], [1, 2, 3]) == 0.0
    assert roc_auc([1, 2], [1, 2]) == 0.5
    assert roc_auc([], [1]) is None
    # 20 clean scores 0..19: at 5% one of them (19) may exceed the threshold, which is 18
    assert tpr_at_fpr(list(range(20)), [17.5, 18.5], 0.05) == 0.5
    assert tpr_at_fpr(list(range(20)), [17.5], 0.01) == 0.0


def test_summary_gives_the_auc_within_each_instrument() -> None:
    def window(instrument: str, variant: str, score: float) -> VariantScore:
        intensity = None if variant == "clean" else "moderate"
        return VariantScore(instrument, 0, variant, intensity, dict.fromkeys(DETECTORS, score), [])

    # A separates spoofing perfectly; B's clean windows all outscore its spoofed ones
    results = [window("A", "clean", x) for x in (1.0, 2.0)]
    results += [window("A", "spoofing", x) for x in (3.0, 4.0)]
    results += [window("B", "clean", x) for x in (10.0, 11.0)]
    results += [window("B", "spoofing", x) for x in (5.0, 6.0)]
    summary = summarize(results)
    within = summary["by_instrument"]
    assert within["A"]["spoofing"]["moderate"]["simulation"] == 1.0
    assert within["B"]["spoofing"]["moderate"]["simulation"] == 0.0
    # pooled: A's spoofed windows beat A's clean ones only, B's beat A's clean ones only
    assert summary["by_typology"]["spoofing"]["moderate"]["simulation"]["auc"] == 0.5


def test_evaluate_command_scores_clean_and_manipulated_windows(
    lobster_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, cal = tmp_path / "eval.json", tmp_path / "cal.json"
    code = main(
        [
            "evaluate",
            "--data",
            str(lobster_zip(lobster_dir, "AMZN", 1)),
            "--start",
            "10:00",
            "--end",
            "10:40",
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
            "momentum_ignition,quote_stuffing",
            "--intensities",
            "high",
            "--json",
            "--out",
            str(out),
            "--calibration-out",
            str(cal),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["windows"] == 4
    cell = summary["by_typology"]["momentum_ignition"]["high"]
    assert set(cell) == {
        "simulation",
        "simulation_uncalibrated",
        "historical_diff",
        "spread_zscore",
    }
    for detector in cell.values():
        assert 0.0 <= detector["auc"] <= 1.0
        assert detector["n_manipulated"] == 4
    windows = json.loads(out.read_text())["windows"]
    assert len(windows) == 4 * 3
    stuffed = [w for w in windows if w["variant"] == "quote_stuffing"]
    assert all(w["injected_events"] > 1000 for w in stuffed)
    # fact norms and threshold fitted on the 4 calibration windows before the evaluation span
    calibration = json.loads(cal.read_text())
    assert calibration["n_normal"] == 4
    assert set(calibration["norms"]) == {"AMZN", "*"}
    assert summary["calibration"]["normal_windows"] == 4
    # no scenarios unless asked for (and 4 windows could not share the rate anyway)
    assert summary["calibration"]["scenarios"] == {} and not calibration.get("scenarios")
    # every window has its time-of-day bucket, and the summary counts clean windows per bucket
    assert all(w["bucket"] in ("open", "midday", "close") for w in windows)
    by_bucket = summary["calibration"]["by_bucket"]["AMZN"]
    assert sum(cell["clean_windows"] for cell in by_bucket.values()) == 4
    assert 0.0 <= summary["calibration"]["false_alarm_rate"] <= 1.0
    # the calibrated score is what the detector reports; the raw one is kept beside it
    clean = [w for w in windows if w["variant"] == "clean"]
    assert all(w["fact_z"] for w in clean)
    assert any(w["scores"]["simulation"] != w["scores"]["simulation_uncalibrated"] for w in clean)


def test_more_spans_add_evaluation_windows_at_the_stride() -> None:
    from simulator.units import parse_clock
    from surveillance.studies.evaluate import EvaluationConfig

    held_out = EvaluationConfig().window_starts()
    opening = EvaluationConfig(extra_spans=((parse_clock("09:35"), parse_clock("10:00")),))
    starts = opening.window_starts()
    assert starts[:5] == [parse_clock(t) for t in ("09:35", "09:40", "09:45", "09:50", "09:55")]
    assert starts[5:] == held_out == sorted(held_out)
    # the calibration windows stay where they were: before the main span, not the extra one
    assert opening.calibration_starts() == EvaluationConfig().calibration_starts()


@pytest.mark.parametrize("span", ["09:35", "10:00-09:35", "9h-10h", "11:00-12:00"])
def test_evaluate_rejects_a_bad_extra_span(span: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--also", span, "--generator", "empirical"]) != 0
    assert "--also" in capsys.readouterr().err


def test_scenarios_are_fitted_not_read_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cal = tmp_path / "cal.json"
    cal.write_text("{}")
    for flag in ("--calibration", "--time-of-day-onto"):
        code = main(["evaluate", "--scenarios", flag, str(cal), "--generator", "empirical"])
        assert code != 0
        assert "--scenarios" in capsys.readouterr().err


def test_evaluate_rejects_an_unknown_typology(capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--typologies", "wash_trading", "--generator", "empirical"]) != 0
    assert "wash_trading" in capsys.readouterr().err


def test_cached_forks_rescore_without_the_generator(lobster_dir: Path, tmp_path: Path) -> None:
    """A second run over the same windows reads every fork from the cache (the generator is
    never called) and scores exactly as the first; a different seed misses."""
    from simulator.generators import EmpiricalGenerator
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.studies.evaluate import EvaluationConfig, evaluate_day
    from surveillance.studies.simcache import SimCache

    class Exploding:
        def begin(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise AssertionError("the cache should have answered")

        next_orders = begin

    path = lobster_zip(lobster_dir, "AMZN", 1)
    config = EvaluationConfig(
        detection=DetectionConfig(window_ns=10 * 60 * 10**9, rollouts=4),
        start_ns=10 * 3600 * 10**9,
        end_ns=(10 * 60 + 20) * 60 * 10**9,
        stride_ns=10 * 60 * 10**9,
        intensities=("high",),
    )
    cache = SimCache(tmp_path / "forks")
    first = evaluate_day(
        path, EmpiricalGenerator(), config, cache=cache, generator_version="empirical-v1"
    )
    assert (cache.hits, cache.misses) == (0, 2)
    assert len(list((tmp_path / "forks").glob("*.npz"))) == 2
    again = SimCache(tmp_path / "forks")
    second = evaluate_day(
        path,
        Exploding(),
        config,
        cache=again,
        generator_version="empirical-v1",  # type: ignore[arg-type]
    )
    assert (again.hits, again.misses) == (2, 0)
    assert [r.as_dict() for r in second] == [r.as_dict() for r in first]
    other_seed = EvaluationConfig(
        detection=DetectionConfig(window_ns=10 * 60 * 10**9, rollouts=4, seed=1),
        start_ns=config.start_ns,
        end_ns=config.end_ns,
        stride_ns=config.stride_ns,
        intensities=("high",),
    )
    refilled = EvaluationConfig(
        detection=DetectionConfig(window_ns=10 * 60 * 10**9, rollouts=4, refill=True),
        start_ns=config.start_ns,
        end_ns=config.end_ns,
        stride_ns=config.stride_ns,
        intensities=("high",),
    )
    for other in (other_seed, refilled):  # other rollouts: a miss
        with pytest.raises(AssertionError, match="cache should have answered"):
            evaluate_day(
                path,
                Exploding(),
                other,
                cache=again,
                generator_version="empirical-v1",  # type: ignore[arg-type]
            )
    with pytest.raises(ValueError, match="generator's version"):
        evaluate_day(path, EmpiricalGenerator(), config, cache=again)


def test_an_unreadable_cache_file_is_a_miss(tmp_path: Path) -> None:
    import numpy as np

    from surveillance.detection.metrics import Trajectory
    from surveillance.studies.simcache import SimCache

    cache = SimCache(tmp_path)
    sims = [
        Trajectory(
            0,
            60 * 10**9,
            1000,
            1100,
            ts_ns=np.array([5, 9 + j], dtype=np.int64),
            type=np.array([1, 2], dtype=np.int8),
            qty=np.array([100, 100 + j], dtype=np.int64),
            aggressive=np.array([False, True]),
            best_bid=np.array([1000, 1000], dtype=np.int64),
            best_ask=np.array([1100, 1200], dtype=np.int64),
            bid_qty=np.array([300, 200], dtype=np.int64),
            ask_qty=np.array([100, 50], dtype=np.int64),
            qty0=(300, 100 + j),
            order_id=np.array([40 + j, 40 + j], dtype=np.int64),
        )
        for j in range(3)
    ]
    cache.save("k", sims)
    back = cache.load("k")
    assert back is not None and len(back) == 3
    for a, b in zip(sims, back, strict=True):
        assert (a.start_ns, a.end_ns, a.bid0, a.ask0, a.qty0) == (
            b.start_ns,
            b.end_ns,
            b.bid0,
            b.ask0,
            b.qty0,
        )
        for col in (
            "ts_ns",
            "type",
            "qty",
            "aggressive",
            "best_bid",
            "best_ask",
            "bid_qty",
            "ask_qty",
            "order_id",
        ):
            assert np.array_equal(getattr(a, col), getattr(b, col))
            assert getattr(a, col).dtype == getattr(b, col).dtype
    (tmp_path / "k.npz").write_bytes(b"not a zip")
    assert cache.load("k") is None
    assert cache.misses == 1 and cache.hits == 1


def test_the_benchmark_forks_a_window_exactly_as_the_replay_does(
    lobster_dir: Path, tmp_path: Path, capsys
) -> None:
    """The benchmark's forks, and so the calibrations fitted on them, are the deployed
    detector's: the order model reads the mid's move since the day's open in both (the
    benchmark once read it from the window's own start, a move of zero, and its calibrations
    did not carry over to the stream worker). Same window, same model, same seed: the same
    per-fact z as the regulator replay and the stream worker."""
    import zipfile

    import torch

    from simulator.lobster import load_lobster
    from surveillance.cli.wiring import SamplerSpec
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.studies.evaluate import EvaluationConfig, _Day, evaluate_day

    torch.set_num_threads(1)
    minute, open_ns = 60 * 10**9, 34_200 * 10**9
    with zipfile.ZipFile(lobster_zip(lobster_dir, "AMZN", 1)) as zf:
        zf.extractall(tmp_path / "full")
    message = next((tmp_path / "full").glob("*_message_1.csv"))
    book = next((tmp_path / "full").glob("*_orderbook_1.csv"))
    n = int((load_lobster(message).messages.ts_ns < open_ns + 11 * minute).sum())
    short = tmp_path / message.name  # the first 11 minutes
    short.write_text("\n".join(message.read_text().splitlines()[:n]) + "\n")
    (tmp_path / book.name).write_text("\n".join(book.read_text().splitlines()[:n]) + "\n")

    out = tmp_path / "scores.jsonl"
    argv = ["replay", str(short), "--window", "5m", "--rollouts", "3", "--out", str(out)]
    assert main([*argv, "--calibration", "self"]) == 0
    replayed = {
        r["window_start"][11:16]: {f: e.get("z") for f, e in r["facts"].items()}
        for r in map(json.loads, out.read_text().splitlines())
        if r["score"] is not None
    }
    assert "09:35" in replayed  # the first window has no context and is not scored
    # the replay says how many windows' rollouts were off the market, and only then
    records = [json.loads(line) for line in out.read_text().splitlines()]
    off = sum(not r["detail"]["simulation"]["faithful"] for r in records if r["score"] is not None)
    said = capsys.readouterr().err
    assert (f"{off} windows' simulations are off the real market" in said) == (off > 0)

    config = EvaluationConfig(
        detection=DetectionConfig(window_ns=5 * minute, rollouts=3),
        start_ns=open_ns + 10 * minute,
        end_ns=open_ns + 15 * minute,
        calibration_start_ns=open_ns + 5 * minute,
        calibration_end_ns=open_ns + 10 * minute,
    )
    (window,) = evaluate_day(short, SamplerSpec()(), config, calibration=True)
    assert window.window_start_ns == open_ns + 5 * minute
    assert window.fact_z == pytest.approx(replayed["09:35"])
    day = _Day(short)
    day.books_at([open_ns + 5 * minute])
    assert day.open_mid != day.book(open_ns + 5 * minute).mid  # the two readings differ here


def test_a_forks_cache_key_names_the_open_mid_it_was_forked_against() -> None:
    from surveillance.studies.simcache import key

    fork = {
        "instrument": "GOOG",
        "start_ns": 0,
        "end_ns": 60 * 10**9,
        "generator_version": "lmm-x",
        "rollouts": 16,
        "seed": 0,
        "history_orders": 128,
        "max_depth": 10,
        "tick_size": 100,
    }
    assert key(**fork, open_mid=5_800_000.0) == key(**fork, open_mid=5_800_000)
    assert key(**fork, open_mid=5_800_000.0) != key(**fork, open_mid=5_800_050.0)
