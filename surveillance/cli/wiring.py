"""The worker's window scorer, built from the settings: the same ``SimulationScorer`` as the
offline replay (``surveillance replay``), so a live run and a replay decide alike.

    scorer = make_scorer(settings)      # SURV_GENERATOR, SURV_ROLLOUTS, SURV_WINDOW, SURV_SEED,
                                        # SURV_CALIBRATION, SURV_MODEL, SURV_DEVICE

Calibration (the alert threshold): ``SURV_CALIBRATION`` is a JSON file (``Calibration.save``),
``none`` (windows are scored, never alert), or ``auto``: the bundled calibration in
``models/checkpoints/`` (``calibration*.json``) whose ``model_version`` is the scorer's
(``surveillance.detection.detector.bundled_calibration``, as the replay's ``auto``). A stream cannot fit
its threshold on its own windows after the fact as a replay can, so without a matching
calibration the worker says so in one log line.
"""

from __future__ import annotations

import logging
from pathlib import Path

from streams.settings import StreamSettings
from surveillance.detection.detector import BUNDLED_DIR, Calibration, bundled_calibration
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig

log = logging.getLogger(__name__)

CHECKPOINT_DIR = BUNDLED_DIR  # where ``auto`` finds the calibrations
DEFAULT_MODEL = CHECKPOINT_DIR / "lmm-small.pt"


class ScorerSetupError(ValueError):
    """The scorer cannot be built from the settings (missing checkpoint, bad calibration)."""


def detection_config(settings: StreamSettings) -> DetectionConfig:
    return DetectionConfig(
        window_ns=settings.window_ns, rollouts=settings.rollouts, seed=settings.seed
    )


def find_calibration(choice: str, *, model_version: str, config_version: str) -> Calibration | None:
    """The calibration named by ``choice`` (see the module docstring), or None."""
    if choice == "none":
        return None
    if choice != "auto":
        path = Path(choice)
        if not path.exists():
            raise ScorerSetupError(f"no such calibration file: {path}")
        cal = Calibration.load(path)
        _check(cal, path, model_version, config_version)
        return cal
    found = bundled_calibration(model_version)
    if found is not None:
        path, cal = found
        _check(cal, path, model_version, config_version)
        return cal
    log.warning(
        "no calibration for model %s in %s: windows are scored but never alert "
        "(set SURV_CALIBRATION to a calibration file)",
        model_version,
        CHECKPOINT_DIR,
    )
    return None


def _check(cal: Calibration, path: Path, model_version: str, config_version: str) -> None:
    if cal.model_version and cal.model_version != model_version:
        log.warning(
            "calibration %s was fitted for model %s, not %s", path, cal.model_version, model_version
        )
    elif cal.config_version and cal.config_version != config_version:
        log.warning(
            "calibration %s was fitted with detection config %s, the worker runs %s "
            "(window, rollouts or seed differ): its threshold may not fit",
            path,
            cal.config_version,
            config_version,
        )
    else:
        log.info("calibration %s: threshold %.4f (far %.3f)", path, cal.threshold, cal.far)


def make_scorer(settings: StreamSettings) -> SimulationScorer:
    """The product's ``SimulationScorer`` configured by ``settings``."""
    config = detection_config(settings)
    model = settings.model
    if settings.generator == "lmm":
        path = Path(model) if model else DEFAULT_MODEL
        if not path.exists():
            raise ScorerSetupError(
                f"no order-model checkpoint at {path}: train one, point SURV_MODEL at one, "
                "or set SURV_GENERATOR=empirical"
            )
        model = str(path)
    scorer = SimulationScorer(
        config,
        generator=settings.generator,
        model_path=model if settings.generator == "lmm" else None,
        device=settings.device,
    )
    scorer.calibration = find_calibration(
        settings.calibration,
        model_version=scorer.model_version,
        config_version=scorer.config_version,
    )
    log.info(
        "scorer: %s generator, %d rollouts, %.0f s windows, seed %d, model %s, config %s",
        settings.generator,
        settings.rollouts,
        settings.window_ns / 1e9,
        settings.seed,
        scorer.model_version,
        scorer.config_version,
    )
    return scorer


def lmm_available(settings: StreamSettings | None = None) -> bool:
    """Whether the order-model checkpoint the settings name (or the bundled one) exists."""
    model = settings.model if settings is not None else None
    return (Path(model) if model else DEFAULT_MODEL).exists()
