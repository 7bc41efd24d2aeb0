"""The forecasting core (targets, thresholds, scores, the engine forecast) on hand-made data and
a few minutes of real AMZN data with the empirical generator, and the command's user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from simulator.book import EMPTY_ASK_PRICE
from simulator.engine import Engine
from simulator.generators import EmpiricalGenerator
from simulator.lobster import load_lobster
from simulator.trajectory import Trajectory
from simulator.units import NS_PER_MIN, NS_PER_S, parse_clock
from surveillance.cli import main
from surveillance.forecast.evaluate import (
    ForecastConfig,
    ForecastDay,
    ForecastReport,
    combine,
    engine_vote,
    evaluate_forecast,
    grid,
    load_arrays,
    save_arrays,
)
from surveillance.forecast.metrics import (
    BlockBootstrap,
    accuracy,
    covered,
    crps_samples,
    macro_f1,
)
from surveillance.forecast.report import render_forecast_report
from surveillance.forecast.targets import DOWN, FLAT, UP, ForecastError, MidPath, Thresholds
from tests.conftest import lobster_zip

S = NS_PER_S


def _trajectory(ts_s, bids, asks, bid0=100, ask0=102) -> Trajectory:
    n = len(ts_s)
    return Trajectory(
        start_ns=0,
        end_ns=10 * S,
        bid0=bid0,
        ask0=ask0,
        ts_ns=np.asarray(ts_s, dtype=np.int64) * S,
        type=np.zeros(n, dtype=np.int8),
        qty=np.ones(n, dtype=np.int64),
        aggressive=np.zeros(n, dtype=bool),
        best_bid=np.asarray(bids, dtype=np.int64),
        best_ask=np.asarray(asks, dtype=np.int64),
    )


def test_target_is_the_mean_mid_after_each_order_within_the_horizon():
    # mids after each order: 102, 104, (one-sided: carries 104), 100; m0 = 101
    t = _trajectory([1, 2, 3, 6], [101, 103, 103, 99], [103, 105, EMPTY_ASK_PRICE, 101])
    p = MidPath.of(t)
    assert p.m0 == 101.0
    assert p.target(3 * S) == pytest.approx(((102 + 104) / 2 - 101) / 101)  # orders at 1 s, 2 s
    assert p.target(4 * S) == pytest.approx(((102 + 104 + 104) / 3 - 101) / 101)
    assert p.target(10 * S) == pytest.approx(((102 + 104 + 104 + 100) / 4 - 101) / 101)
    assert p.target(S // 2) == 0.0  # no order yet: the mid has not moved
    assert p.mid_at(S // 2) == 101.0 and p.mid_at(5 * S) == 104.0 and p.mid_at(7 * S) == 100.0


def test_thresholds_are_terciles_and_classify_per_horizon():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(300, 2)) * [1.0, 3.0]
    th = Thresholds.fit(targets, [60 * S, 120 * S], list(range(300)))
    lo, hi = np.quantile(targets, [1 / 3, 2 / 3], axis=0)
    assert th.lower == pytest.approx(lo) and th.upper == pytest.approx(hi)
    classes = th.classify(targets)
    assert np.bincount(classes[:, 1], minlength=3).tolist() == [100, 100, 100]
    assert th.classify(np.array([lo[0] - 1, lo[0], hi[0] + 1]), 0).tolist() == [DOWN, FLAT, UP]
    with pytest.raises(ForecastError):
        Thresholds.fit(targets[:2], [60 * S, 120 * S], [0, 1])


def test_macro_f1_and_accuracy_match_scikit_learn_and_batch():
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 3, 40)
        p = rng.integers(0, 2, 40)  # a class never predicted
        assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    y, p = np.array([0, 0, 1]), np.array([0, 0, 0])  # class 2 absent from both: not averaged
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    ys, ps = rng.integers(0, 3, (5, 30)), rng.integers(0, 3, (5, 30))
    assert macro_f1(ys, ps) == pytest.approx([macro_f1(a, b) for a, b in zip(ys, ps, strict=True)])
    assert accuracy(ys, ps) == pytest.approx([accuracy(a, b) for a, b in zip(ys, ps, strict=True)])


def test_crps_of_samples_on_known_cases():
    assert crps_samples(np.array([0.0, 1.0]), np.array(0.0)) == pytest.approx(0.25)
    assert crps_samples(np.array([3.0, 3.0, 3.0]), np.array(1.0)) == pytest.approx(2.0)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 9)), rng.normal(size=4)
    brute = np.abs(x - y[:, None]).mean(1) - 0.5 * np.abs(x[:, :, None] - x[:, None, :]).mean(
        (1, 2)
    )
    assert crps_samples(x, y) == pytest.approx(brute)
    # a large sample of N(0, 1) at 0: CRPS = (sqrt(2) - 1) / sqrt(pi)
    big = np.random.default_rng(3).normal(size=20000)
    assert float(crps_samples(big, np.array(0.0))) == pytest.approx(0.2337, abs=0.01)


def test_coverage_of_central_intervals():
    x = np.arange(101.0)  # quantiles: 25..75 and 5..95
    assert covered(x, np.array(50.0), 0.5) and not covered(x, np.array(80.0), 0.5)
    assert covered(x, np.array(95.0), 0.9) and not covered(x, np.array(96.0), 0.9)
    rng = np.random.default_rng(4)
    draws = rng.normal(size=(2000, 200))
    assert covered(draws, rng.normal(size=2000), 0.9).mean() == pytest.approx(0.9, abs=0.03)


def test_block_bootstrap_resamples_consecutive_runs_within_each_series():
    b = BlockBootstrap([10, 6], block=3, draws=50, seed=5)
    assert b.indices.shape == (50, 16)
    first, second = b.indices[:, :10], b.indices[:, 10:]
    assert first.max() < 10 and second.min() >= 10
    steps = np.diff(first[:, :3], axis=1) % 10  # a block: consecutive (circular) positions
    assert (steps == 1).all()
    again = BlockBootstrap([10, 6], block=3, draws=50, seed=5)
    assert (again.indices == b.indices).all()
    ci = b.interval(lambda ix: ix.mean(-1))
    assert ci.low <= ci.value <= ci.high


def test_grid_and_engine_vote():
    assert grid(0, 10 * S, 2 * S, 5 * S) == [0, 2 * S, 4 * S]
    with pytest.raises(ForecastError):
        grid(0, 4 * S, S, 5 * S)
    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.2, 0.4], [0.0, 0.25, 0.75]])
    assert engine_vote(probs).tolist() == [FLAT, DOWN, UP]


@pytest.fixture(scope="module")
def amzn(lobster_dir: Path):
    return load_lobster(lobster_zip(lobster_dir, "AMZN", 5))


CFG = ForecastConfig(
    horizons_ns=(30 * S, 60 * S),
    rollouts=3,
    train_every_ns=120 * S,
    bootstrap_draws=100,
)


def test_thresholds_come_from_training_hours_only(amzn):
    fday = ForecastDay.prepare(amzn, CFG)
    held = parse_clock("14:30")
    assert max(fday.train_starts) + CFG.max_horizon_ns <= held
    assert min(fday.train_starts) >= parse_clock("09:45")
    targets = fday.paths.targets(fday.train_starts, CFG.horizons_ns)
    assert fday.thresholds.lower == pytest.approx(np.quantile(targets, 1 / 3, axis=0))
    # the real path's targets read only orders inside each horizon
    last = fday.paths.at(max(fday.train_starts))
    assert last.ts_ns[last.count_before(CFG.max_horizon_ns) - 1] < held


def test_engine_forecast_on_a_few_held_out_minutes(amzn, tmp_path):
    start = parse_clock("14:30")

    def deeplob_stub(fday, starts):  # an outside forecaster's classes for the same starts
        return {"deeplob": np.full((len(starts), 2), UP)}

    report = evaluate_forecast(
        amzn,
        Engine(EmpiricalGenerator()),
        start_ns=start,
        end_ns=start + 3 * NS_PER_MIN,
        every_ns=60 * S,
        config=CFG,
        external=deeplob_stub,
    )
    fc = report.instruments[0]
    assert fc.starts_ns.tolist() == [start, start + 60 * S, start + 120 * S]
    assert fc.sim_targets.shape == (3, 3, 2) and fc.sim_mid.shape == (3, 3, 2)
    assert np.allclose(fc.class_probabilities.sum(-1), 1.0)
    assert set(fc.predictions) == {
        "engine",
        "engine_mean",
        "deeplob",
        "logistic",
        "no_change",
        "most_frequent",
    }
    out = json.loads(json.dumps(report.as_dict()))
    row = out["pooled"]["per_horizon"][0]
    assert row["horizon_s"] == 30 and row["methods"]["deeplob"]["accuracy"]["value"] == (
        pytest.approx(float(np.mean(fc.real_classes[:, 0] == UP)), abs=1e-4)
    )
    assert 0.0 <= row["coverage"]["90"]["value"] <= 1.0
    assert row["crps_bps"]["no_change"]["value"] == pytest.approx(
        float(np.mean(np.abs(1e4 * (fc.real_mid[:, 0] - fc.m0) / fc.m0))), abs=1e-3
    )
    assert out["fans"] and "goals" in out
    html = render_forecast_report(out)
    assert html.count("<svg") >= 3 and "AMZN" in html
    # saved arrays re-score to the same figures, and interleaved runs combine into one
    save_arrays(str(tmp_path / "a.npz"), report.instruments)
    (back,) = load_arrays(str(tmp_path / "a.npz"))
    again = ForecastReport(CFG, 60 * S, [back]).as_dict()
    assert again["pooled"] == out["pooled"]
    odd, even = _take(back, [1]), _take(back, [0, 2])
    (merged,) = combine([odd, even])
    assert merged.starts_ns.tolist() == fc.starts_ns.tolist()
    assert ForecastReport(CFG, 60 * S, [merged]).as_dict()["pooled"] == out["pooled"]


def _take(f, rows):
    from dataclasses import replace

    names = ("starts_ns", "m0", "real_targets", "real_classes", "real_mid", "sim_targets")
    return replace(
        f,
        **{n: getattr(f, n)[rows] for n in (*names, "sim_mid")},
        predictions={m: v[rows] for m, v in f.predictions.items()},
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--every", "0s"], "--every"),
        (["--horizons", "2m,1m"], "--horizons"),
        (["--horizons", "soon"], "--horizons"),
        (["--data", "no-such-dataset"], "--data"),
        (["--start", "15:58"], "leaves room"),
    ],
)
def test_command_errors_are_one_line(lobster_dir: Path, capsys, args, needle):
    data = str(lobster_zip(lobster_dir, "AMZN", 5))
    base = ["forecast", "--data", data, "--generator", "empirical", "--no-deeplob", "--json"]
    if "--data" in args:
        base = base[:1] + base[3:]
    code = main([*base, *args])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and needle in err, err


def test_command_runs_and_scores_its_saved_arrays(lobster_dir: Path, capsys, tmp_path):
    data = str(lobster_zip(lobster_dir, "AMZN", 5))
    args = ["--data", data, "--start", "14:30", "--end", "14:33", "--every", "60s"]
    args += ["--horizons", "30s,1m", "--rollouts", "2", "--generator", "empirical"]
    args += ["--no-deeplob", "--jobs", "1", "--quiet", "--json"]
    arrays = tmp_path / "a.npz"
    assert main(["forecast", *args, "--arrays", str(arrays)]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["pooled"]["starts"] == 3 and run["generator"] == "empirical-v1"
    assert main(["forecast", "score", str(arrays), "--rollouts", "2", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["pooled"] == run["pooled"]
