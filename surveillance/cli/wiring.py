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
from simulator.generators import EmpiricalGenerator, mixture
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
    # the order model reads agents' orders as tokens of its context (MarS); False: only
    # through the book they leave (``models.generator.LMMGenerator``), to compare
    see_agents: bool = True

    @classmethod
    def of(cls, settings: DetectionSettings) -> SamplerSpec:
        return cls(
            settings.generator,
            settings.models,
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
        members = [
            load_generator(p, device=self.device, see_agents=self.see_agents, **self.sampling_dict)
            for p in self.paths
        ]
        if len(members) == 1:
            return members[0]
        return mixture(members)  # type: ignore[arg-type]

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
        # forks without agents are the same either way (calibrations and caches hold only
        # those); a report on forks with agents says which way its model read them
        return "+".join(versions) + ("" if self.see_agents else "-blind-agents")


def checkpoint_instrument(path: str | Path) -> Instrument:
    """The instrument a checkpoint was trained for (its meta's ``instrument``); a checkpoint
    without one was trained on the LOBSTER NASDAQ samples (every one bundled before venues)."""
    import json

    meta_path = Path(path).with_suffix(".json")
    data = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    found = data.get("instrument")
    if isinstance(found, dict):
        return Instrument.from_dict(found)
    return Instrument("LOBSTER")  # the defaults: NASDAQ's venue, tick and session


def _same_venue(a: Instrument, b: Instrument) -> bool:
    """Whether a model trained on ``a`` knows ``b``'s market: the same venue, and for a venue
    other than NASDAQ (whose LOBSTER models are trained across its stocks) the same symbol."""
    if a.venue != b.venue:
        return False
    return a.venue == "NASDAQ" or a.symbol == b.symbol


def venue_checkpoint(instrument: Instrument, directory: Path = CHECKPOINT_DIR) -> Path | None:
    """The checkpoint trained for ``instrument``'s venue and symbol (``*.pt`` with an
    ``instrument`` in its meta, in name order); None when no model was trained for it."""
    for weights in sorted(directory.glob("*.pt")):
        meta = weights.with_suffix(".json")
        if not meta.exists():
            continue
        trained = checkpoint_instrument(weights)
        if trained.venue != "NASDAQ" and _same_venue(trained, instrument):
            return weights
    return None


@dataclass(frozen=True, slots=True)
class VenueSampler:
    """The sampler a run on one venue uses, and the line that says which and why."""

    spec: SamplerSpec
    note: str


def sampler_for_venue(spec: SamplerSpec, instrument: Instrument | None) -> VenueSampler:
    """The venue's model: a checkpoint named with ``--model`` serves as asked (with a warning
    when it was trained on another venue); otherwise the one trained for this venue, the
    bundled NASDAQ model for NASDAQ (and inputs without metadata), or, where no model was
    trained for the venue, the empirical generator, and the note says so. The empirical
    generator always takes the venue's tick."""
    if instrument is None:
        return VenueSampler(spec, _served(spec, "no instrument metadata"))
    where = f"{instrument.symbol} on {instrument.venue}"
    spec = dataclasses.replace(spec, tick_size=instrument.tick_size)
    if spec.kind != "lmm":
        return VenueSampler(spec, _served(spec, "as asked"))
    if spec.models:  # an explicit --model
        trained = [checkpoint_instrument(p) for p in spec.paths]
        other = [t for t in trained if not _same_venue(t, instrument)]
        why = (
            f"as asked; trained on {other[0].symbol} ({other[0].venue}), not {where}"
            if other
            else "as asked"
        )
        return VenueSampler(spec, _served(spec, why))
    if instrument.venue == "NASDAQ":
        return VenueSampler(spec, _served(spec, f"the bundled model, trained on {where}"))
    found = venue_checkpoint(instrument)
    if found is not None:
        spec = dataclasses.replace(spec, models=(str(found),))
        return VenueSampler(spec, _served(spec, f"trained for {where}"))
    spec = dataclasses.replace(spec, kind="empirical", models=(), sampling=())
    return VenueSampler(spec, f"{EMPIRICAL_VERSION}: no model trained for this venue ({where})")


def _served(spec: SamplerSpec, why: str) -> str:
    return f"{spec.model_version}: {why}"


def bundled_calibration(
    model_version: str, directory: Path = CHECKPOINT_DIR, instrument: Instrument | None = None
) -> tuple[Path, Calibration] | None:
    """The calibration shipped beside the checkpoints (``calibration*.json``, in name order)
    fitted for ``model_version``, with its path; None when none was. A model is deployed
    together with its calibration: this is what ``auto`` means everywhere. With an
    ``instrument`` of another venue than NASDAQ, only a calibration whose fact norms were fitted
    on that instrument's windows: the bundled ones were fitted on NASDAQ stocks, and their
    pooled norms are no crypto or futures market's."""
    for path in sorted(directory.glob("calibration*.json")):
        cal = Calibration.load(path)
        if cal.model_version != model_version:
            continue
        if instrument is not None and not _knows(cal, instrument):
            continue
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
    instrument: Instrument | None = None,
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
        found = bundled_calibration(model_version, instrument=instrument)
        if found is not None:
            path, cal = found
            _check(cal, path, model_version, config_version)
            return ResolvedCalibration(cal, None, str(path))
        if can_self:
            return ResolvedCalibration(
                None,
                far,
                f"self: no calibration bundled for model {model_version}{_for(instrument)}",
            )
        log.warning(
            "no calibration for model %s in %s: windows are scored but never alert "
            "(set SURV_CALIBRATION to a calibration file)",
            model_version,
            CHECKPOINT_DIR,
        )
        return ResolvedCalibration(
            None, None, f"none bundled for model {model_version}{_for(instrument)}"
        )
    path = Path(choice)
    if not path.exists():
        raise ScorerSetupError(f"no such calibration file: {path}")
    cal = Calibration.load(path)
    _check(cal, path, model_version, config_version)
    return ResolvedCalibration(cal, None, str(path))


def _knows(cal: Calibration, instrument: Instrument) -> bool:
    return instrument.venue == "NASDAQ" or instrument.symbol in cal.norms


def _for(instrument: Instrument | None) -> str:
    return "" if instrument is None else f" on {instrument.symbol} ({instrument.venue})"


def _check(cal: Calibration, path: Path, model_version: str, config_version: str) -> None:
    if cal.model_version and cal.model_version != model_version:
        log.warning(
            "calibration %s was fitted for model %s, not %s", path, cal.model_version, model_version
        )
    elif cal.config_version and cal.config_version != config_version:
        log.warning(
            "calibration %s was fitted with detection config %s, this run uses %s "
            "(window, rollouts, seed or facts differ): its threshold may not fit",
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
    LOBSTER samples') in the detection config and the empirical generator, and the sampler is
    the venue's (``sampler_for_venue``: its model, or the empirical generator where none was
    trained for it; the line that says which is logged and kept as ``scorer.sampler_note``)."""
    chosen = sampler_for_venue(SamplerSpec.of(settings), instrument)
    spec = chosen.spec
    config = settings.config()
    if instrument is not None:
        config = dataclasses.replace(
            config, tick_size=instrument.tick_size, price_scale=instrument.price_scale
        )
    scorer = SimulationScorer(config, spec, spec.model_version)
    # a fallback to another generator than the one asked for is worth a warning
    level = logging.WARNING if spec.kind != settings.generator else logging.INFO
    log.log(level, "sampler: %s", chosen.note)
    resolved = resolve_calibration(
        settings.calibration,
        model_version=scorer.model_version,
        config_version=scorer.config_version,
        far=settings.far,
        can_self=can_self,
        instrument=instrument,
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


def worker_scorer(stream_settings: Any, instrument: Instrument | None = None) -> SimulationScorer:
    """The stream worker's scorer (``SURV_SCORER``'s default): ``make_scorer`` on the
    detection settings the worker reads from ``SURV_*``; with ``instrument`` (the venue
    metadata a feed sent) the venue's tick, price scale, model and calibration."""
    return make_scorer(stream_settings.detection(), instrument=instrument)[0]
