"""One typed settings object for a detection run: what the command line, the stream worker
and the demo all read (``surveillance.cli.options.detection_options`` builds the command-line
options from it; ``streams.settings.StreamSettings.detection`` builds it from ``SURV_*``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from surveillance.detection.scoring import DetectionConfig

GENERATORS = ("lmm", "empirical")
# auto: the calibration bundled for the model; none: never alert; self: fit the threshold on
# the run's own windows (a replay only); anything else: a calibration file
CALIBRATION_CHOICES = ("auto", "none", "self")
Sampling = dict[str, float | tuple[float, ...]]
_CONFIG = DetectionConfig()  # the defaults the bundled calibrations were fitted with


class SettingsError(ValueError):
    """Detection settings that do not go together."""


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    window_ns: int = _CONFIG.window_ns
    rollouts: int = _CONFIG.rollouts
    seed: int = 0
    generator: Literal["lmm", "empirical"] = "lmm"
    # order-model checkpoint; None: the bundled default; several: a mixture, rollout i driven
    # by model i mod M (models trained with other seeds average out what they do not share)
    model: str | tuple[str, ...] | None = None
    device: str = "cpu"
    # ``temperature`` / ``top_p`` overriding the checkpoint's own sampling (order model only)
    sampling: Sampling = field(default_factory=dict)
    calibration: str = "auto"
    far: float = _CONFIG.far
    baseline_windows: int = _CONFIG.baseline_windows
    refill: bool = False

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise SettingsError(
                f"unknown generator {self.generator!r}; choose from {', '.join(GENERATORS)}"
            )
        if self.sampling and self.generator != "lmm":
            raise SettingsError(
                "--temperature and --top-p set how the order model samples: use them with "
                "--generator lmm"
            )
        if not 0.0 < self.far < 1.0:
            raise SettingsError(f"false-alarm rate must lie in (0, 1), got {self.far}")

    @property
    def models(self) -> tuple[str, ...]:
        """The order-model checkpoints asked for (none: the bundled default)."""
        if self.model is None:
            return ()
        return (self.model,) if isinstance(self.model, str) else tuple(self.model)

    def config(self) -> DetectionConfig:
        """The detection configuration these settings run (its digest is the config version)."""
        return DetectionConfig(
            window_ns=self.window_ns,
            rollouts=self.rollouts,
            seed=self.seed,
            far=self.far,
            baseline_windows=self.baseline_windows,
            refill=self.refill,
        )
