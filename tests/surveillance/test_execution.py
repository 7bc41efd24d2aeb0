"""The execution environment on forks of a small synthetic book (the empirical generator on a
synthetic history: the model is not the point here)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from simulator.engine import Engine, ForkRequest
from simulator.generators import EmpiricalGenerator
from simulator.matching import MatchingRules
from simulator.rollout import rollout_stream
from surveillance.cli import main
from surveillance.execution import ExecutionConfig, ExecutionEnv
from surveillance.execution.learn import (
    FixedAction,
    TrainSettings,
    episode_list,
    mean_shortfall,
    paired,
    run_episodes,
    train_learner,
)
from surveillance.execution.market import StaticMarket, extend_context
from tests.simulator.test_engine import deep_book
from tests.simulator.test_rollout import synthetic_history

S = 1_000_000_000
RULES = MatchingRules(tick_size=100)
STARTS = tuple(100 * S + k * 60 * S for k in range(4))


def market() -> StaticMarket:
    history, rows = synthetic_history(np.random.default_rng(1), n=600)
    # a calmer flow than the engine tests' (one order every 0.5 s): episodes stay cheap
    history = dataclasses.replace(history, ts_ns=history.ts_ns * 10)
    return StaticMarket("TEST", deep_book(), history, rows, 10_000.0, STARTS, RULES, 5)


def small_config(**changes) -> ExecutionConfig:
    base = dict(qty=400, horizon_ns=60 * S, interval_ns=15 * S, passive_ns=12 * S)
    base.update(changes)
    return ExecutionConfig(**base, pvr=(0.0, 1.0), levels=(0, 2))  # type: ignore[arg-type]


def make(**changes) -> ExecutionEnv:
    return ExecutionEnv(market(), EmpiricalGenerator(), small_config(**changes))


def play(env: ExecutionEnv, seed: int, actions: list[int]) -> tuple[list, list[float]]:
    obs, _ = env.reset(seed=seed)
    seen, rewards = [obs], []
    for a in actions:
        obs, r, terminated, truncated, _ = env.step(a)
        seen.append(obs)
        rewards.append(r)
        if terminated or truncated:
            break
    return seen, rewards


def test_the_environment_passes_the_gymnasium_checker() -> None:
    check_env(make(), skip_render_check=True)


def test_the_same_seed_and_actions_give_the_same_episode() -> None:
    actions = [1, 2, 3, 1]  # passive, passive and aggressive, ...
    a = play(make(), 5, actions)
    b = play(make(), 5, actions)
    c = play(make(), 6, actions)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1]
    assert a[1] != c[1]


def test_the_immediate_order_fills_at_once_and_terminates() -> None:
    env = make()
    env.reset(seed=1)
    _, reward, terminated, truncated, info = env.step(env.config.sweep)
    assert terminated and not truncated
    assert info["fill_rate"] == 1.0
    # 400 shares of a 300-share ask level and the next: above the arrival mid, a cost
    assert info["filled_shortfall_bps"] > 0 and reward == pytest.approx(-info["shortfall_bps"])
    assert all(p in (10_100, 10_200, 10_300) for _, p, _ in env.state.fills)  # type: ignore[union-attr]


def test_an_order_that_never_trades_is_truncated_at_the_horizon_with_the_penalty() -> None:
    env = make()
    env.reset(seed=2)
    idle = 0  # no passive volume, no aggressive price
    for step in range(env.config.steps):
        _, reward, terminated, truncated, info = env.step(idle)
        assert not terminated
        assert truncated == (step == env.config.steps - 1)
    assert info["fill_rate"] == 0.0
    assert reward <= -env.config.penalty_bps + 1.0  # the penalty, beyond the touch's mark
    assert info["shortfall_bps"] == pytest.approx(-reward)


def test_the_context_carried_to_the_next_interval_keeps_its_rows_aligned() -> None:
    m = market()
    req: ForkRequest = m.request(STARTS[0])
    req = dataclasses.replace(req, horizon_ns=10 * S, keep_books=True)
    result = Engine(EmpiricalGenerator()).fork_one(req).results[0]
    generated = rollout_stream(result)
    assert len(generated) == int(result.applied.sum()) > 0
    stream, rows = extend_context(req.context, req.context_rows, result, 0)
    assert rows is not None and len(rows) == len(stream) == len(req.context) + len(generated)
    # the row before the first generated order is the book at the fork
    first = len(req.context)
    assert rows[first].tolist() == [10_100, 300, 9_900, 300]


def test_the_learner_beats_a_policy_that_never_trades() -> None:
    env = make()
    settings = TrainSettings(
        bandit_episodes=1, iterations=1, population=2, episodes=1, validation=1, seed=3
    )
    trained = train_learner(env, STARTS, settings)
    eps = episode_list(STARTS, 4, seed=9, spread=True)
    learner = run_episodes(env, trained.policy, eps)
    idle = run_episodes(env, FixedAction(0, "idle"), eps)
    assert mean_shortfall(learner) < mean_shortfall(idle)
    assert paired(learner, idle).verdict == "better"
    assert np.mean([e.fill_rate for e in learner]) == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "no-such-data"], "no such data file or dataset name"),
        (["train", "--data", "x", "--interval", "7s"], "whole number of decision intervals"),
        (["evaluate", "--data", "x", "--policy", "missing.json"], "cannot read the policy"),
    ],
)
def test_the_command_fails_in_one_line(args, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("")
    code = main(["execution", *args])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error:") and "\n" not in err and message in err


def test_a_policy_file_round_trips(tmp_path) -> None:
    from surveillance.execution.learn import LinearPolicy
    from surveillance.execution.study import config_dict, load_policy

    cfg = small_config()
    policy = LinearPolicy.favouring(2, cfg.actions, 1.0, "learner")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"policy": policy.to_dict(), "config": config_dict(cfg)}))
    back, back_cfg, _ = load_policy(path)
    assert back_cfg == cfg and np.array_equal(back.weights, policy.weights)


def test_the_report_draws_the_intervals_and_fill_rates(tmp_path) -> None:
    from surveillance.execution.report import write_report
    from surveillance.execution.study import config_dict

    def row(name: str, mean: float) -> dict:
        return {
            "policy": name, "shortfall_bps": mean, "filled_shortfall_bps": mean,
            "fill_rate": 1.0, "complete": 1.0, "vs_best_twap_bps": mean - 1.0,
            "vs_best_twap_low": mean - 1.5, "vs_best_twap_high": mean - 0.5,
            "vs_best_twap": "no difference",
        }  # fmt: skip

    result = {
        "instrument": "TEST", "config": config_dict(small_config()), "episodes": 2,
        "hours": ["14:30", "16:00"], "best_twap": "twap-p1-l2", "seconds": 1.0,
        "policies": [row("twap-p1-l2", 1.0), row("learner", 0.8)],
        "goal": {"learner_vs_best_twap": "no difference", "learner_fill_rate": 1.0, "met": True},
    }  # fmt: skip
    html = write_report(tmp_path / "r.html", result, None).read_text()
    assert html.count("<svg") == 2 and "Goal met" in html and "learner" in html
