"""Optimal execution on the engine: a gymnasium environment that forks a real book every
decision interval (``env``), the agent acting inside each fork (``agent``), baselines and the
learner (``learn``), and the study on a recorded day (``study``).

``gymnasium.make("surveillance/Execution-v0")`` builds the environment on the GOOG sample
day's training hours driven by the empirical generator (``make_env``'s defaults);
``surveillance/ExecutionLMM-v0`` drives it with the bundled order model (its factory lives in
the command line's wiring, the only layer that loads the model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from simulator.dayforks import DayForks
from simulator.engine import Sampler
from simulator.lobster import LobsterDay
from surveillance.execution.env import ENV_ID, ExecutionConfig, ExecutionEnv
from surveillance.execution.learn import LinearPolicy, TrainSettings
from surveillance.execution.market import ExecutionError

LMM_ENV_ID = "surveillance/ExecutionLMM-v0"

__all__ = [
    "ENV_ID",
    "LMM_ENV_ID",
    "ExecutionConfig",
    "ExecutionEnv",
    "ExecutionError",
    "LinearPolicy",
    "TrainSettings",
    "make_env",
]


def make_env(
    data: str | Path | LobsterDay | DayForks = "lobster-goog-10",
    hours: str = "train",
    sampler: Sampler | None = None,
    **config: Any,
) -> ExecutionEnv:
    """The environment on a recorded day (a data registry name, a LOBSTER zip, or a loaded
    day), episodes starting in the training (``train``: 10:00-14:30) or held-out (``test``:
    14:30-16:00) hours; ``config``: ``ExecutionConfig`` fields. ``sampler``: the order
    generator (the empirical one when None)."""
    from simulator.generators import EmpiricalGenerator
    from simulator.lobster import load_lobster
    from surveillance.execution.study import TEST_HOURS, TRAIN_HOURS, day_env

    if hours not in ("train", "test"):
        raise ExecutionError(f"hours must be 'train' or 'test', got {hours!r}")
    if isinstance(data, str | Path):
        from surveillance.datasets import DATASETS, data_path

        data = load_lobster(data_path(str(data)) if str(data) in DATASETS else Path(data))
    forks = data if isinstance(data, DayForks) else DayForks(data)
    if sampler is None:
        sampler = EmpiricalGenerator(tick_size=forks.tick_size)
    cfg = ExecutionConfig(**config)
    return day_env(forks, sampler, cfg, TRAIN_HOURS if hours == "train" else TEST_HOURS)


def _register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="surveillance.execution:make_env")
    if LMM_ENV_ID not in gym.registry:
        # a string entry point: this package never imports the order model itself
        gym.register(LMM_ENV_ID, entry_point="surveillance.cli.commands.execution:make_lmm_env")


_register()
