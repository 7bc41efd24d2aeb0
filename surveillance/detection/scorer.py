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

from simulator.engine import Engine, Sampler
from simulator.rollout import ContextError
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import ClosedWindow, WindowScore
from surveillance.detection.scoring import DetectionConfig, score_window, simulate, skipped


@dataclass(slots=True)
class SimulationScorer:
    """Scores a closed window against its simulated futures (see the module docstring)."""

    config: DetectionConfig
    sampler: Callable[[], Sampler]
    model_version: str
    calibration: Calibration | None = None
    config_version: str = ""

    def __post_init__(self) -> None:
        if not self.config_version:
            self.config_version = self.config.version()

    def __call__(self, window: ClosedWindow) -> WindowScore:
        simulation = None
        why = None
        if skipped(window) is None:
            try:
                simulation = simulate([window], Engine(self.sampler()), self.config)[0]
            except ContextError as exc:  # e.g. the flow before a venue's open: nothing to fork
                why = f"no context to fork from: {exc}"
        return score_window(window, simulation, self.config, self.calibration, not_simulated=why)

    def score_many(self, windows: Sequence[ClosedWindow]) -> list[WindowScore]:
        """Every window's ``__call__`` score, the rollouts of all of them forked in one
        ``Engine.fork`` call (the engine batches them); a window whose context cannot be
        forked sends the batch back to one fork per window, so it alone is skipped."""
        todo = [w for w in windows if skipped(w) is None]
        try:
            sims = simulate(todo, Engine(self.sampler()), self.config) if todo else []
        except ContextError:
            return [self(w) for w in windows]
        simulated = dict(zip(map(id, todo), sims, strict=True))
        return [
            score_window(w, simulated.get(id(w)), self.config, self.calibration) for w in windows
        ]
