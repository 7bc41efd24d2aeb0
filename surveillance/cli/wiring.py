"""Which sampler, checkpoint and calibration a run uses: decided here, at the top, and passed
down to the engine and the detection path (which never import the order model).

- ``SamplerSpec``: the one generator factory. A picklable callable that returns the process's
  sampler (built once per process: loading a model per window would dominate the cost), and
  the one model-version scheme (``model_version``).
- ``resolve_calibration``: the one calibration resolver, with one vocabulary
  (``auto | none | self | PATH``, ``surveillance.detection.settings``).
- ``make_scorer``: the product's ``SimulationScorer`` from ``DetectionSettings``; the stream
  worker's scorer factory (``SURV_SCORER``) is ``worker_scorer``.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.engine import Sampler
from simulator.generators import EmpiricalGenerator, MixtureGenerator
from simulator.types import Instrument
from surveillance.detection.detector import Calibration
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.settings import (
    GENERATORS,
    DetectionSettings,
    Sampling,
    SettingsError,
)

log = logging.getLogger(__name__)

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "models" / "checkpoints"
DEFAULT_MODEL = CHECKPOINT_DIR / "lmm-small.pt"
EMPIRICAL_VERSION = "empirical-v1"


class ScorerSetupError(ValueError):
    """The scorer cannot be built from the settings (missing checkpoint, bad calibration)."""


# One sampler per spec per process.
_SAMPLERS: dict[SamplerSpec, Sampler] = {}


@dataclass(frozen=True, slots=True)
class SamplerSpec:
    """An order model (``lmm``: one checkpoint, the bundled one by default, or several rolled
    out as a mixture, rollout i driven by model i mod M) or the empirical baseline, on a
    device, sampled at each checkpoint's own settings unless ``sampling`` overrides them."""

    kind: str = "lmm"
    models: tuple[str, ...] = ()
    device: str = "cpu"
    sampling: tuple[tuple[str, Any], ...] = field(default=())
    threads: int = 1  # torch threads (CPU): a small model on shared cores, more only contend
    tick_size: int = 100  # the empirical generator's

    @classmethod
    def of(cls, settings: DetectionSettings) -> SamplerSpec:
        return cls(
            settings.generator,
            (settings.model,) if settings.model else (),
            settings.device,
            tuple(sorted(settings.sampling.items())),
        ).checked()

    def checked(self) -> SamplerSpec:
        """This spec, once its kind and checkpoints are known to exist (one clear error)."""
        if self.kind not in GENERATORS:
            raise SettingsError(f"unknown generator {self.kind!r}; choose from {GENERATORS}")
        if self.sampling and self.kind != "lmm":
            raise SettingsError("sampling settings are the order model's (generator lmm)")
        for path in self.paths:
            if not path.exists():
                raise ScorerSetupError(
                    f"no model checkpoint at {path}: train one, point --model (SURV_MODEL) at "
                    "one, or use --generator empirical"
                )
        return self

    @property
    def paths(self) -> tuple[Path, ...]:
        if self.kind != "lmm":
            return ()
        return tuple(Path(m) for m in self.models) or (DEFAULT_MODEL,)

    @property
    def sampling_dict(self) -> Sampling:
        return dict(self.sampling)

    def __call__(self) -> Sampler:
        sampler = _SAMPLERS.get(self)
        if sampler is None:
            sampler = _SAMPLERS[self] = self._build()
        return sampler

    def _build(self) -> Sampler:
        if self.kind == "empirical":
            return EmpiricalGenerator(tick_size=self.tick_size)
        if self.kind != "lmm":
            raise SettingsError(f"unknown generator {self.kind!r}")
        from models.generator import load_generator

        if self.device == "cpu":
            import torch

            torch.set_num_threads(self.threads)
        members = [load_generator(p, device=self.device, **self.sampling_dict) for p in self.paths]
        if len(members) == 1:
            return members[0]
        return MixtureGenerator(members)  # type: ignore[arg-type]

    @property
    def model_version(self) -> str:
        """``lmm-<name>-<crc of the weights>-<sampler version>``: changes whenever the weights,
        the sampling rules or the sampling settings do (the checkpoint's own unless ``sampling``
        sets them); a mixture joins its members' with ``+``; ``empirical-v1`` for the
        baseline. Calibrations, alert ids, cached forks and study reports are keyed by it."""
        if self.kind != "lmm":
            return EMPIRICAL_VERSION
        from models.checkpoint import checkpoint_sampling
        from models.generator import sampler_version

        versions = []
        for path in self.paths:
            if not path.exists():
                raise FileNotFoundError(f"no model checkpoint at {path}")
            settings = {**checkpoint_sampling(path), **self.sampling_dict}
            sampler = sampler_version(**settings)  # type: ignore[arg-type]
            versions.append(f"lmm-{path.stem}-{zlib.crc32(path.read_bytes()):08x}-{sampler}")
        return "+".join(versions)


def bundled_calibration(
    model_version: str, directory: Path = CHECKPOINT_DIR
) -> tuple[Path, Calibration] | None:
    """The calibration shipped beside the checkpoints (``calibration*.json``, in name order)
    fitted for ``model_version``, with its path; None when none was. A model is deployed
    together with its calibration: this is what ``auto`` means everywhere."""
    for path in sorted(directory.glob("calibration*.json")):
        cal = Calibration.load(path)
        if cal.model_version == model_version:
            return path, cal
    return None


@dataclass(frozen=True, slots=True)
class ResolvedCalibration:
    """What a run's calibration choice came to: a calibration, or a false-alarm rate to fit
    the threshold on the run's own windows (``self``), or neither (windows never alert)."""

    calibration: Calibration | None
    self_far: float | None
    source: str  # the file, "self", or why there is none


def resolve_calibration(
    choice: str,
    *,
    model_version: str,
    config_version: str,
    far: float,
    can_self: bool,
) -> ResolvedCalibration:
    """``auto``: the bundled calibration fitted for the model; without one, ``self`` where the
    run can fit its own (a replay), else none (a stream cannot look back at its windows).
    ``none``, ``self``, or a calibration file."""
    if choice == "none":
        return ResolvedCalibration(None, None, "none")
    if choice == "self":
        if not can_self:
            raise ScorerSetupError(
                "calibration 'self' fits the threshold on a replay's own windows; a stream "
                "cannot: use auto, none or a calibration file"
            )
        return ResolvedCalibration(None, far, "self")
    if choice == "auto":
        found = bundled_calibration(model_version)
        if found is not None:
            path, cal = found
            _check(cal, path, model_version, config_version)
            return ResolvedCalibration(cal, None, str(path))
        if can_self:
            return ResolvedCalibration(
                None, far, f"self: no calibration bundled for model {model_version}"
            )
        log.warning(
            "no calibration for model %s in %s: windows are scored but never alert "
            "(set SURV_CALIBRATION to a calibration file)",
            model_version,
            CHECKPOINT_DIR,
        )
        return ResolvedCalibration(None, None, f"none bundled for model {model_version}")
    path = Path(choice)
    if not path.exists():
        raise ScorerSetupError(f"no such calibration file: {path}")
    cal = Calibration.load(path)
    _check(cal, path, model_version, config_version)
    return ResolvedCalibration(cal, None, str(path))


def _check(cal: Calibration, path: Path, model_version: str, config_version: str) -> None:
    if cal.model_version and cal.model_version != model_version:
        log.warning(
            "calibration %s was fitted for model %s, not %s", path, cal.model_version, model_version
        )
    elif cal.config_version and cal.config_version != config_version:
        log.warning(
            "calibration %s was fitted with detection config %s, this run uses %s "
            "(window, rollouts or seed differ): its threshold may not fit",
            path,
            cal.config_version,
            config_version,
        )
    else:
        log.info("calibration %s: threshold %.4f (far %.3f)", path, cal.threshold, cal.far)


def make_scorer(
    settings: DetectionSettings,
    *,
    can_self: bool = False,
    instrument: Instrument | None = None,
) -> tuple[SimulationScorer, ResolvedCalibration]:
    """The product's ``SimulationScorer`` for ``settings``, with its calibration resolved.
    ``instrument``: the venue's metadata; its tick and price scale replace the defaults (the
    LOBSTER samples') in the detection config and the empirical generator."""
    spec = SamplerSpec.of(settings)
    config = settings.config()
    if instrument is not None:
        config = dataclasses.replace(
            config, tick_size=instrument.tick_size, price_scale=instrument.price_scale
        )
        spec = dataclasses.replace(spec, tick_size=instrument.tick_size)
    scorer = SimulationScorer(config, spec, spec.model_version)
    resolved = resolve_calibration(
        settings.calibration,
        model_version=scorer.model_version,
        config_version=scorer.config_version,
        far=settings.far,
        can_self=can_self,
    )
    scorer.calibration = resolved.calibration
    log.info(
        "scorer: %s generator, %d rollouts, %.0f s windows, seed %d, model %s, config %s",
        settings.generator,
        settings.rollouts,
        settings.window_ns / 1e9,
        settings.seed,
        scorer.model_version,
        scorer.config_version,
    )
    return scorer, resolved


def worker_scorer(stream_settings: Any) -> SimulationScorer:
    """The stream worker's scorer (``SURV_SCORER``'s default): ``make_scorer`` on the
    detection settings the worker reads from ``SURV_*``."""
    return make_scorer(stream_settings.detection())[0]
