"""Order-model checkpoints: a plain ``state_dict`` (``<stem>.pt``, loaded with
``weights_only=True``) beside a JSON meta (``<stem>.json``) holding everything needed to rebuild
the model without code from training: the architecture config, the tokenizer bins, the
training data fingerprints, the validation losses and the command line that reproduces it.

A meta may also carry ``sampling``: the temperature and top-p (four values each: type, price,
volume, interval) the model's rollouts are drawn with (``surveillance train --temperature
--top-p``). A checkpoint without it samples with ``models.generator``'s defaults. Both
``load_generator`` and the model version that calibrations and cached forks are keyed by
(``surveillance.detection.scorer.checkpoint_version``) read it, so a checkpoint's sampling travels with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from models.model import LMMConfig, OrderModel, field_temperatures, field_top_p
from models.tokenizer import OrderTokenizer

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "lmm-small.pt"
FORMAT = "mars-lmm-order-model"
FORMAT_VERSION = 1


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def sampling_of(meta: dict[str, Any]) -> dict[str, tuple[float, float, float, float]]:
    """The sampling settings a checkpoint meta carries (``temperature``, ``top_p``; empty when
    it carries none). A malformed entry is a ``ValueError``."""
    sampling = meta.get("sampling") or {}
    unknown = set(sampling) - {"temperature", "top_p"}
    if unknown:
        raise ValueError(f"unknown sampling settings {sorted(unknown)} in the checkpoint meta")
    out = {}
    if "temperature" in sampling:
        out["temperature"] = field_temperatures(sampling["temperature"])
    if "top_p" in sampling:
        out["top_p"] = field_top_p(sampling["top_p"])
    return out


def checkpoint_sampling(path: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """``sampling_of`` the meta beside the checkpoint at ``path`` (only the JSON is read; no
    meta, no settings: such a checkpoint does not load either)."""
    _, meta_path = _paths(path)
    if not meta_path.exists():
        return {}
    return sampling_of(json.loads(meta_path.read_text()))


def save_checkpoint(
    path: str | Path,
    model: OrderModel,
    tokenizer: OrderTokenizer,
    meta: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.pt`` and ``<stem>.json``; returns both paths."""
    weights, meta_path = _paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    torch.save(state, weights)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        **(meta or {}),
    }
    meta_path.write_text(json.dumps(doc, indent=1) + "\n")
    return weights, meta_path


def load_checkpoint(
    path: str | Path = DEFAULT_CHECKPOINT, device: str = "cpu"
) -> tuple[OrderModel, OrderTokenizer, dict[str, Any]]:
    """Rebuild ``(model in eval mode, tokenizer, meta)`` from a checkpoint written above."""
    weights, meta_path = _paths(path)
    if not weights.exists() or not meta_path.exists():
        raise FileNotFoundError(f"checkpoint {weights} / {meta_path.name} not found")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: not a {FORMAT} v{FORMAT_VERSION} checkpoint")
    cfg = LMMConfig.from_dict(meta["config"])
    tokenizer = OrderTokenizer.from_dict(meta["tokenizer"])
    if cfg.lob_dim != tokenizer.lob_dim:  # e.g. a tokenizer whose feature flags were edited
        raise ValueError(
            f"{meta_path}: the model reads {cfg.lob_dim} book features, its tokenizer "
            f"gives {tokenizer.lob_dim}"
        )
    model = OrderModel(cfg)
    state = torch.load(weights, map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return model, tokenizer, meta
