"""Market impact on paired forks: the measurement, the fits and the command's errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from simulator.agents import MarketOrder
from simulator.engine import Engine
from simulator.generators import EmpiricalGenerator
from surveillance.cli import main
from surveillance.impact import LADDER, ImpactError, Strategy, VolumeScale, impact_of_request
from surveillance.impact.fit import fit_decay, fit_power_law
from surveillance.impact.measure import ImpactRun, Volatility, pooled_size_law, size_law
from surveillance.impact.report import render
from tests.simulator.test_engine import S, request
from tests.simulator.test_rollout import ScriptGenerator

IDLE = [[]]  # the script generator's model sends nothing near the top of the book
VOLUME = VolumeScale(60 * S, 10_000.0, 500_000.0, 0.0, "09:30:00", "14:30:00")


def run(strategy: Strategy, sizes, generator=None, compare=False, **changes):
    gen = generator or ScriptGenerator(IDLE)
    if generator is None:  # the script reads no history
        changes = {"max_depth": None, "context_rows": None, **changes}
    base = request(**changes)
    return impact_of_request(
        base,
        lambda: gen,
        side=1,
        sizes=sizes,
        strategy=strategy,
        duration_ns=20 * S,
        volume=VOLUME,
        engine=Engine(gen),
        draws=20,
        compare=compare,
    )


def test_an_immediate_order_moves_the_mid_by_what_it_took() -> None:
    # asks 10,100..10,500 x 300: buying 700 leaves the ask at 10,300, the mid at 10,100
    runs, ladder, _, law = run(Strategy("market", levels=None), [(700, 7.0)])
    (r,) = runs
    assert not ladder and law is None
    assert np.allclose(r.impact * 1e4, 100.0)  # 100 bps from the arrival on, in every rollout
    assert (r.filled == 700).all()
    vwap = (300 * 10_100 + 300 * 10_200 + 100 * 10_300) / 700
    assert np.allclose(r.shortfall_bps, (vwap - 10_000) / 10_000 * 1e4)
    out = r.summary(sigma_t=0.01)
    assert out["fill_rate"] == 1.0 and out["peak_bps"] == pytest.approx(100.0)
    assert out["end_sigma"] == pytest.approx(1.0)
    assert out["exec_end_s"] == 0.0


def test_paired_forks_are_the_same_future_until_the_agent_acts() -> None:
    """The two requests differ only in their agent: same seed, same orders until it acts."""
    base = request(rollouts=4)
    late = MarketOrder(1, 500, base.start_ns + 30 * S)
    engine = Engine(EmpiricalGenerator())
    plain, paired = engine.fork([base, dataclasses.replace(base, agents=(late,))])
    for a, b in zip(plain.results, paired.results, strict=True):
        before = a.ts_ns < late.ts_ns
        n = int(before.sum())
        assert n > 0 and (a.price[:n] == b.price[:n]).all() and (a.qty[:n] == b.qty[:n]).all()
        assert (a.best_ask[:n] == b.best_ask[:n]).all()


def test_the_impact_of_a_twap_sweep_and_ladder_on_a_resampling_model() -> None:
    runs, _, vol, law = run(
        Strategy("twap", passive=0.5, levels=2, slice_ns=5 * S),
        [(200, 2.0), (800, 8.0)],
        generator=EmpiricalGenerator(),
        rollouts=6,
        horizon_ns=40 * S,
    )
    assert [r.qty for r in runs] == [200, 800] and law is not None
    assert vol.per_sqrt_s > 0
    assert all(r.impact.shape == (6, 9) for r in runs)  # 0..40 s every 5 s
    assert all((r.impact[:, 0] == 0).all() for r in runs)  # nothing traded yet at arrival
    assert all(r.exec_end_s == 20.0 for r in runs)
    assert all(0 < r.filled.mean() <= r.qty for r in runs)


def test_the_aggressiveness_ladder_runs_at_the_largest_size_and_reuses_the_sweep() -> None:
    runs, ladder, _, _ = run(Strategy("twap", passive=0.8, levels=5), [(200, 2.0), (400, 4.0)],
                             compare=True)  # fmt: skip
    assert [r.strategy.name for r in ladder] == [s.name for s in LADDER]
    assert all(r.qty == 400 for r in ladder) and ladder[1] is runs[1]
    market = ladder[-1]
    assert (market.filled == 400).all() and market.exec_end_s == 0.0
    # the immediate order took 300 at 10,100 and 100 at 10,200: the ask moved one tick
    assert np.allclose(market.impact[:, 0] * 1e4, 50.0)


def test_the_size_law_recovers_its_exponent() -> None:
    rng = np.random.default_rng(3)
    n, sigma = 64, 0.002
    vol = Volatility(sigma / np.sqrt(60.0), 60.0, np.full(n, sigma**2 * 4), np.full(n, 4.0))
    runs = []
    t = np.arange(0, 121, 5.0)
    for pct in (0.5, 1, 2, 4, 8):
        qty = VOLUME.shares(pct)
        mean = 0.8 * sigma * (qty / VOLUME.per_duration) ** 0.55
        end = mean + rng.normal(0, 0.1 * mean, size=n)
        impact = np.tile(end[:, None], (1, len(t)))
        runs.append(
            ImpactRun(
                Strategy(),
                qty,
                pct,
                60.0,
                t,
                impact,
                np.full(n, float(qty)),
                np.zeros(n),
                np.zeros(n),
                0.0,
            )
        )
    law = size_law(runs, vol, 60.0, VOLUME, draws=200)
    assert law.exponent == pytest.approx(0.55, abs=0.03)
    assert law.scale == pytest.approx(0.8, rel=0.1)
    assert law.exponent_ci is not None and law.exponent_ci[0] < 0.55 < law.exponent_ci[1]
    out = law.as_dict()
    assert out["goals"]["delta_in_0.4_0.7"] and out["goals"]["delta_ci_excludes_0_and_1"]
    assert out["goals"]["impact_rises_with_size"]
    pooled = pooled_size_law([out, out], draws=100)
    assert pooled["points"] == 10 and pooled["delta"] == pytest.approx(law.exponent, abs=0.01)


def test_a_power_law_and_a_decay_fit_through_noise() -> None:
    rng = np.random.default_rng(0)
    x = np.array([0.005, 0.01, 0.02, 0.04, 0.08])
    law = fit_power_law(x, 0.6 * x**0.45 * (1 + rng.normal(0, 0.01, 5)))
    assert law.exponent == pytest.approx(0.45, abs=0.03)
    s = np.arange(0, 900, 5.0)
    y = 3.0 * (1 + s / 120) ** -0.6 + rng.normal(0, 0.05, len(s))
    d = fit_decay(s, y)
    assert d.exponent == pytest.approx(0.6, abs=0.1)


def test_a_bad_setup_is_a_typed_error() -> None:
    with pytest.raises(ImpactError, match="strategy"):
        Strategy("vwap")
    with pytest.raises(ImpactError, match="at least one share"):
        run(Strategy(), [(0, 0.0)])


def test_the_report_page_renders_a_sweep() -> None:
    runs = run(Strategy("market"), [(300, 3.0), (700, 7.0)])[0]
    path = {"t_s": [0.0, 5.0], "mean_bps": [0.0, 1.0], "q10_bps": [0.0, 0.5],
            "q90_bps": [0.0, 2.0], "mean_sigma": [0, 1], "q10_sigma": [0, 1], "q90_sigma": [0, 1]}  # fmt: skip
    for r in runs:
        r.decay_draws = 0  # the page, not the interval, is tested here
    rows = [dict(r.summary(0.01), path=path) for r in runs]
    out = {
        "instrument": "TEST", "side": "buy", "start": "00:01:40", "rollouts": 3, "seed": 7,
        "generator": "script", "duration_s": 20.0, "after_s": 40.0, "held_out": False,
        "volatility": {"sigma_T_bps": 1.0, "per_minute_bps": 1.0},
        "volume": VOLUME.as_dict(), "runs": rows, "notes": ["a note"],
        "size_law": {"x": [0.03, 0.07], "y": [1.0, 1.5], "y_se": [0.1, 0.1], "delta": 0.5,
                     "delta_ci95": [0.4, 0.6], "Y": 5.0, "Y_ci95": None, "Y_daily": 5.0,
                     "Y_daily_ci95": None, "Y_literature": [0.5, 1.0], "goals": {}},
        "aggressiveness": {"runs": rows, "peak_rises": True},
    }  # fmt: skip
    page = render(out)
    assert page.count("<svg") == 4 and "delta = 0.50" in page and "a note" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "no-such.zip", "--pct", "1"], "no file or dataset"),
        (["--data", "x", "--size", "100", "--pct", "1"], "--size SHARES or --pct"),
        (["--data", "x"], "--size SHARES or --pct"),
        (["--data", "x", "--pct", "1,-2"], "positive"),
        (["--data", "x", "--pct", "1", "--duration", "soon"], "not a duration"),
        (["--data", "x", "--size", "5", "--strategy", "market", "--compare"], "ladder"),
    ],
)
def test_the_command_says_what_is_wrong_in_one_line(capsys, args, message) -> None:
    assert main(["impact", *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_the_command_runs_on_a_recorded_day(tmp_path, capsys) -> None:
    from surveillance.datasets import DataUnavailable, data_path

    try:
        data_path("lobster-amzn-5")
    except DataUnavailable:
        pytest.skip("no AMZN day")
    report = tmp_path / "impact.html"
    args = ["impact", "--data", "lobster-amzn-5", "--start", "14:40", "--pct", "2,8",
            "--duration", "1m", "--after", "1m", "--rollouts", "4", "--generator", "empirical",
            "--json", "--report", str(report)]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["held_out"] and [r["pct"] for r in out["runs"]] == [2.0, 8.0]
    assert out["size_law"] is not None and report.exists()
    assert out["agent_orders"] == "through the book"  # the resampling model reads no orders


def test_the_report_says_how_the_order_model_read_the_metaorder(capsys) -> None:
    from surveillance.datasets import DataUnavailable, data_path

    try:
        data_path("lobster-amzn-5")
    except DataUnavailable:
        pytest.skip("no AMZN day")
    args = ["impact", "--data", "lobster-amzn-5", "--start", "14:40", "--pct", "2",
            "--duration", "30s", "--after", "5s", "--rollouts", "2", "--json"]  # fmt: skip
    assert main(args) == 0
    seeing = json.loads(capsys.readouterr().out)
    assert main([*args, "--blind-agents"]) == 0
    blind = json.loads(capsys.readouterr().out)
    assert seeing["agent_orders"] == "as orders" and blind["agent_orders"] == "through the book"
    assert blind["generator"] == seeing["generator"] + "-blind-agents"
