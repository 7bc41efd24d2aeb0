"""``SimulationScorer``: the ``WindowScorer`` of the product (offline replay, stream worker and
demo alike): it forks a window's rollouts with the engine and scores the window on the one
detection path (``surveillance.detection.scoring``).

Which order model samples the rollouts is decided above this layer (``surveillance.cli.wiring``)
and comes in as ``sampler``: a picklable callable that returns the process's sampler, so the
worker can score in a process pool and each process builds its model once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simulator.engine import Engine, Sampler
from simulator.rollout import ContextError
from surveillance.detection.detector import Calibration
from surveillance.detection.metrics import Trajectory
from surveillance.detection.pipeline import ClosedWindow, WindowScore
from surveillance.detection.scoring import (
    DetectionConfig,
    Simulation,
    reference_facts,
    score_window,
    simulate,
    skipped,
)


class ForkCache(Protocol):
    """Forked rollouts kept between runs (``surveillance.studies.simcache.WindowForkCache``
    on disk): a replay rescored with another calibration skips the order model. Keyed by
    everything the fork depends on, so a hit is what forking again would have produced."""

    def load(
        self, window: ClosedWindow, config: DetectionConfig, model_version: str
    ) -> list[Trajectory] | None: ...

    def save(
        self,
        window: ClosedWindow,
        config: DetectionConfig,
        model_version: str,
        sims: Sequence[Trajectory],
    ) -> None: ...


@dataclass(slots=True)
class SimulationScorer:
    """Scores a closed window against its simulated futures (see the module docstring)."""

    config: DetectionConfig
    sampler: Callable[[], Sampler]
    model_version: str
    calibration: Calibration | None = None
    config_version: str = ""
    cache: ForkCache | None = None

    def __post_init__(self) -> None:
        if not self.config_version:
            self.config_version = self.config.version()

    def __call__(self, window: ClosedWindow) -> WindowScore:
        simulation = None
        why = None
        if skipped(window) is None:
            try:
                simulation = self._simulate(window)
            except ContextError as exc:  # e.g. the flow before a venue's open: nothing to fork
                why = f"no context to fork from: {exc}"
        return score_window(window, simulation, self.config, self.calibration, not_simulated=why)

    def _simulate(self, window: ClosedWindow) -> Simulation:
        cached = (
            None if self.cache is None else self.cache.load(window, self.config, self.model_version)
        )
        if cached is not None:
            return Simulation.of(cached, self.config, reference_facts(window, self.config))
        simulation = simulate([window], Engine(self.sampler()), self.config)[0]
        if self.cache is not None:
            self.cache.save(window, self.config, self.model_version, simulation.sims)
        return simulation
