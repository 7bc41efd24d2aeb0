"""``SimulationScorer``: the ``WindowScorer`` of the product (offline replay, stream worker and
demo alike): it forks a window's rollouts with the engine and scores the window on the one
detection path (``surveillance.detection.scoring``).

Which order model samples the rollouts is decided above this layer (``surveillance.cli.wiring``)
and comes in as ``sampler``: a picklable callable that returns the process's sampler, so the
worker can score in a process pool and each process builds its model once.
"""

from __future__ import annotations

import dataclasses
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
    fork_request,
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

    def score_batch(
        self, windows: Sequence[ClosedWindow], *, max_batch: int | None = None
    ) -> list[WindowScore]:
        """Each window's score, as ``self(window)`` gives it, with the rollouts of every window
        stepped together (``Engine.fork``: one model call per step for all of them, at most
        ``max_batch`` rollouts in flight). A window the sampler cannot fork (``ContextError``)
        is decided as ``self(window)`` decides it; the others are forked again without it,
        which gives them the same futures (a fork does not depend on its batch)."""
        engine = Engine(self.sampler(), max_batch=max_batch)
        sims: dict[int, Simulation] = {}
        todo = []
        for w in windows:
            if skipped(w) is not None:
                continue
            cached = self._cached(w)
            if cached is not None:
                sims[id(w)] = cached
            else:
                todo.append(w)
        while todo:
            try:
                for w, sim in zip(todo, simulate(todo, engine, self.config), strict=True):
                    sims[id(w)] = sim
                    if self.cache is not None:
                        self.cache.save(w, self.config, self.model_version, sim.sims)
                break
            except ContextError:
                # find the window(s) that cannot be forked: each alone, then the rest together
                bad = [w for w in todo if _cannot_fork(w, engine, self.config)]
                if not bad:
                    raise
                bad_ids = {id(w) for w in bad}
                todo = [w for w in todo if id(w) not in bad_ids]
        out = []
        for w in windows:
            if id(w) in sims:
                out.append(score_window(w, sims[id(w)], self.config, self.calibration))
            else:
                out.append(self(w))
        return out

    def __call__(self, window: ClosedWindow) -> WindowScore:
        simulation = None
        why = None
        if skipped(window) is None:
            try:
                simulation = self._simulate(window)
            except ContextError as exc:  # e.g. the flow before a venue's open: nothing to fork
                why = f"no context to fork from: {exc}"
        return score_window(window, simulation, self.config, self.calibration, not_simulated=why)

    def _cached(self, window: ClosedWindow) -> Simulation | None:
        if self.cache is None:
            return None
        cached = self.cache.load(window, self.config, self.model_version)
        if cached is None:
            return None
        return Simulation.of(
            cached, self.config, reference_facts(window, self.config), window.feed_depth
        )

    def _simulate(self, window: ClosedWindow) -> Simulation:
        cached = self._cached(window)
        if cached is not None:
            return cached
        simulation = simulate([window], Engine(self.sampler()), self.config)[0]
        if self.cache is not None:
            self.cache.save(window, self.config, self.model_version, simulation.sims)
        return simulation


def _cannot_fork(window: ClosedWindow, engine: Engine, config: DetectionConfig) -> bool:
    """Whether forking the window alone raises ``ContextError`` (only called after a batch did;
    forks with one rollout, enough to reach the sampler's context check)."""
    try:
        request = dataclasses.replace(fork_request(window, config)[0], rollouts=1, max_orders=1)
        engine.fork([request])
    except ContextError:
        return True
    return False
