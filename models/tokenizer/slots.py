"""Token ids: the four slots of an order token and the bijection between ids and slots."""

from __future__ import annotations

import numpy as np

N_TYPES = 3
N_PRICE = 32
N_VOLUME = 32
N_INTERVAL = 16
VOCAB_SIZE = N_TYPES * N_PRICE * N_VOLUME * N_INTERVAL  # 49,152


def token_id(type_, price_slot, volume_slot, interval_slot):
    """The id of a (type, price slot, volume slot, interval slot) tuple (scalars or arrays)."""
    return ((np.asarray(type_, np.int64) * N_PRICE + price_slot) * N_VOLUME + volume_slot) * (
        N_INTERVAL
    ) + interval_slot


def token_fields(ids) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of ``token_id``: ``(type, price_slot, volume_slot, interval_slot)``."""
    ids = np.asarray(ids, np.int64)
    interval_slot = ids % N_INTERVAL
    rest = ids // N_INTERVAL
    volume_slot = rest % N_VOLUME
    rest //= N_VOLUME
    price_slot = rest % N_PRICE
    return rest // N_PRICE, price_slot, volume_slot, interval_slot
