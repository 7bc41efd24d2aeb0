"""``SimulationScorer``: the ``WindowScorer`` of the product (offline replay and stream worker).

It forks rollouts from the window's opening book with an order generator (the trained order
model by default), scores the real window against them (``surveillance.detection.detector``), adds the
baselines against the instrument's earlier windows, and applies the calibrated threshold.

A scorer is picklable (the worker may score in a process pool): it carries only its settings;
the generator, which may hold a torch model, is built lazily once per process.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.generators import EmpiricalGenerator
from simulator.rollout import OrderGenerator
from surveillance.detection.detector import Calibration, historical_diff, spread_zscore
from surveillance.detection.pipeline import ClosedWindow, WindowScore
from surveillance.detection.scoring import DetectionConfig, simulate_window, window_seed

GENERATORS = ("lmm", "empirical")

# One generator per (kind, checkpoint, device, sampling) per process: loading a model per window
# would dominate the cost of scoring it.
_GENERATORS: dict[tuple[str, str, str, str], OrderGenerator] = {}


def checkpoint_version(path: str | Path | None, sampling: Mapping[str, Any] | None = None) -> str:
    """``lmm-<name>-<crc of the weights>-<sampler version>``: changes whenever the weights do,
    and whenever the sampling rules or the sampling settings do: the checkpoint's own
    (``models.checkpoint.checkpoint_sampling``) unless ``sampling`` (``temperature``,
    ``top_p``) sets them for the run (``models.generator.sampler_version``)."""
    # local: keeps torch out of the core
    from models.checkpoint import DEFAULT_CHECKPOINT, checkpoint_sampling
    from models.generator import sampler_version

    p = Path(path) if path is not None else Path(DEFAULT_CHECKPOINT)
    if not p.exists():
        raise FileNotFoundError(f"no model checkpoint at {p}")
    settings = {**checkpoint_sampling(p), **(sampling or {})}
    sampler = sampler_version(**settings)  # type: ignore[arg-type]
    return f"lmm-{p.stem}-{zlib.crc32(p.read_bytes()):08x}-{sampler}"


def make_generator(
    kind: str,
    model_path: str | None = None,
    device: str = "cpu",
    sampling: Mapping[str, Any] | None = None,
) -> OrderGenerator:
    """The process's generator of this kind, checkpoint and device; ``sampling``
    (``temperature``, ``top_p``) overrides how the order model samples."""
    sampling = dict(sampling or {})
    if sampling and kind != "lmm":
        raise ValueError(f"sampling settings are the order model's; the {kind} generator has none")
    key = (kind, str(model_path), device, repr(sorted(sampling.items())))
    generator = _GENERATORS.get(key)
    if generator is None:
        if kind == "lmm":
            from models.generator import load_generator

            if device == "cpu":
                import torch

                # The model is small: one thread per process beats two fighting over tiny
                # matrices (and leaves the other core to matching and to sibling processes).
                torch.set_num_threads(1)

            generator = (
                load_generator(device=device, **sampling)
                if model_path is None
                else load_generator(model_path, device=device, **sampling)
            )
        elif kind == "empirical":
            generator = EmpiricalGenerator()
        else:
            raise ValueError(f"unknown generator {kind!r}; choose from {', '.join(GENERATORS)}")
        _GENERATORS[key] = generator
    return generator


@dataclass(slots=True)
class SimulationScorer:
    """Scores a closed window against its simulated futures (see the module docstring)."""

    config: DetectionConfig
    generator: str = "lmm"
    model_path: str | None = None
    device: str = "cpu"
    calibration: Calibration | None = None
    model_version: str = ""
    config_version: str = ""
    # ``temperature`` / ``top_p`` for the order model's rollouts, overriding the checkpoint's own
    # (``models.generator.load_generator``); part of ``model_version``
    sampling: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}")
        if self.sampling and self.generator != "lmm":
            raise ValueError("sampling settings are the order model's (generator lmm)")
        if not self.model_version:
            self.model_version = (
                checkpoint_version(self.model_path, self.sampling)
                if self.generator == "lmm"
                else "empirical-v1"
            )
        if not self.config_version:
            self.config_version = self.config.version()

    def __call__(self, window: ClosedWindow) -> WindowScore:
        config = self.config
        facts = window.real_facts
        earlier = list(window.earlier_facts)
        baselines: dict[str, float | None] = {"historical_diff": None, "spread_zscore": None}
        if facts is not None:
            baselines["historical_diff"] = historical_diff(facts, earlier, config.facts)  # type: ignore[arg-type]
            baselines["spread_zscore"] = spread_zscore(facts, earlier)  # type: ignore[arg-type]
        if not window.history or not window.events:
            # The model forks from the book *and* the recent order flow; a stream's first
            # window has no earlier flow, so it is decided without a score (never an alert).
            reason = "no earlier order flow as context" if window.events else "no events"
            return WindowScore(
                score=None,
                p_value=None,
                alert=False,
                baselines=baselines,
                detail={"skipped": reason, "calibrated": self.calibration is not None},
            )
        open_mid = window.open_mid
        if open_mid is None:
            mid = window.opening_book.mid
            open_mid = float(mid) if mid is not None else 0.0
        scored = simulate_window(
            instrument=window.instrument,
            start_ns=window.start_ns,
            end_ns=window.horizon_end_ns,
            opening_book=window.opening_book,
            events=window.events,
            history=window.history,
            history_book=window.history_book,
            open_mid=open_mid,
            generator=make_generator(self.generator, self.model_path, self.device, self.sampling),
            config=config,
            real_facts=facts,  # type: ignore[arg-type]
            real=window.real_trajectory,
        )
        verdict = scored.verdict
        cal = self.calibration
        score = (
            cal.score(verdict.score, verdict.fact_z(), window.instrument)
            if cal is not None
            else verdict.score
        )
        alert = cal.is_alert(score) if cal is not None else False
        detail: dict[str, Any] = {
            "raw_score": verdict.score,
            "facts": {f: e.as_dict() for f, e in verdict.facts.items()},
            "p_value_sim": verdict.p_value,
            "p_value_sim_normal": verdict.p_value_normal,
            "null_scores": [round(x, 4) for x in verdict.null_scores],
            "rollouts": verdict.rollouts,
            "rollout_orders": scored.rollout_orders,
            "real_orders": scored.n_orders,
            "seed": window_seed(config.seed, window.instrument, window.start_ns),
            "calibrated": cal is not None,
            "evidence": scored.evidence,
        }
        return WindowScore(
            score=score,
            # calibrated on normal windows when a calibration exists, else against the rollouts
            p_value=cal.p_value(score) if cal is not None else verdict.p_value,
            alert=alert,
            facts={f: e.ovl for f, e in verdict.facts.items() if e.ovl is not None},
            diverged=tuple(verdict.diverged()),
            baselines=baselines,
            expected={f: e.null_mean for f, e in verdict.facts.items() if e.null_mean is not None},
            threshold=cal.threshold if cal is not None else None,
            severity=cal.severity(score) if cal is not None else "none",
            detail=detail,
        )
