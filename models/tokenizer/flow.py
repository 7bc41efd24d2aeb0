"""Order-flow features: moving averages of what each order was, over the orders so far."""

from __future__ import annotations

from typing import Any

import numpy as np

from models.tokenizer.features import LOB_SCALE
from simulator.orderstream import OrderType

# Order-flow features (``OrderTokenizer.flow``, ``surveillance train --flow``): exponential
# moving averages, over the orders so far, of what each order was, for regimes longer than the
# model's context (the closing ramp). Lower validation loss but less realistic rollouts, so not
# the bundled model: docs/decisions/order-flow-features.md.
FLOW_HALF_LIVES = (256, 2048)  # in orders
FLOW_SIGNALS = ("cancel", "marketable", "bid", "limit_log_size", "log_interval")
FLOW_DIM = len(FLOW_HALF_LIVES) * len(FLOW_SIGNALS)
# Where every average starts (the first order of a day, or of a rollout's history): round
# figures of the training days, so that nothing depends on which data a state starts from.
FLOW_PRIOR = np.array([0.45, 0.04, 0.27, 0.28, 0.5], np.float64)
_FLOW_DECAY = np.array([2.0 ** (-1.0 / h) for h in FLOW_HALF_LIVES])


def flow_signals(type_, aggressive, qty, interval_ns) -> np.ndarray:
    """(N, len(FLOW_SIGNALS)) per-order signals: a cancel, a marketable limit order, a bid, the
    log size of a limit order (0 for a cancel), the log of the interval since the previous order
    (milliseconds), each scaled to about [0, 1]."""
    t = np.asarray(type_, np.int64)
    limit = t != int(OrderType.CANCEL)
    out = np.empty((len(t), len(FLOW_SIGNALS)), np.float64)
    out[:, 0] = ~limit
    out[:, 1] = limit & np.asarray(aggressive, bool)
    out[:, 2] = t == int(OrderType.BID)
    out[:, 3] = np.where(limit, np.log1p(np.asarray(qty, np.float64)) / LOB_SCALE, 0.0)
    out[:, 4] = np.log1p(np.asarray(interval_ns, np.float64) / 1e6) / LOB_SCALE
    return out


def flow_features(signals: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
    """(N, FLOW_DIM) float32: after each order, the moving averages of ``signals`` over it and
    the orders before it (one block per half-life), starting from ``state`` (the averages before
    the first order, ``FLOW_DIM`` values; default ``FLOW_PRIOR`` for every half-life)."""
    from scipy.signal import lfilter

    x = np.asarray(signals, np.float64)
    k = x.shape[1]
    prior = np.tile(FLOW_PRIOR, len(FLOW_HALF_LIVES)) if state is None else np.asarray(state)
    blocks = [
        lfilter([1 - d], [1, -d], x, axis=0, zi=d * prior[None, b * k : (b + 1) * k])[0]
        for b, d in enumerate(_FLOW_DECAY)
    ]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def flow_step(state: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """One order per row: ``state`` (B, FLOW_DIM) averages before it -> after it."""
    decay = np.repeat(_FLOW_DECAY, len(FLOW_SIGNALS))
    return decay * state + (1 - decay) * np.tile(signals, len(FLOW_HALF_LIVES))


def _flow_from_dict(features: dict[str, Any]) -> bool:
    """Whether saved features include the order flow, and that they are the ones this code
    computes (a checkpoint trained with other half-lives, signals or prior would read wrong
    features without an error)."""
    if not features.get("flow", False):
        return False
    saved = (
        tuple(features.get("flow_half_lives", ())),
        tuple(features.get("flow_signals", ())),
        tuple(features.get("flow_prior", ())),
    )
    if saved != (FLOW_HALF_LIVES, FLOW_SIGNALS, tuple(FLOW_PRIOR.tolist())):
        raise ValueError(f"order-flow features {saved} differ from this code's")
    return True
