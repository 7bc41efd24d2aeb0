"""What the direct forecasters read at a start time: a few book and return features (the
logistic regression) and the last book snapshots (DeepLOB's input), both from the vendor's own
book rows (LOBSTER layout: per level ask price, ask size, bid price, bid size)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.dayforks import DayForks
from simulator.units import NS_PER_S
from surveillance.forecast.targets import DayPaths

# Look-backs of the recent-return features (seconds).
RETURN_LOOKBACKS_S = (10, 30, 60, 300)
LOGISTIC_FEATURES = (
    "imbalance_l1",
    "imbalance_l5",
    *(f"return_{s}s_bps" for s in RETURN_LOOKBACKS_S),
    "spread_ticks",
)
SNAPSHOTS = 100  # DeepLOB's look-back: the last 100 book snapshots
DEEPLOB_LEVELS = 5  # 20 features: 5 levels x (ask price, ask size, bid price, bid size)


def row_before(forks: DayForks, ts_ns: int) -> int:
    """Index of the book row in force just before the first order at or after ``ts_ns`` (the
    book ``DayForks.book_at`` forks from)."""
    i0 = forks.first_order(ts_ns)
    if i0 >= len(forks.stream):
        return len(forks.rows) - 1
    return max(int(forks.stream.source_row[i0]) - 1, 0)


def _imbalance(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    total = bid + ask
    return np.where(total > 0, (bid - ask) / np.maximum(total, 1), 0.0)


def logistic_features(forks: DayForks, paths: DayPaths, starts_ns: Sequence[int]) -> np.ndarray:
    """``LOGISTIC_FEATURES`` at every start (rows): touch and five-level size imbalance, the
    mid's returns over the look-backs in basis points, and the spread in ticks."""
    out = np.zeros((len(starts_ns), len(LOGISTIC_FEATURES)))
    levels = min(5, forks.day.levels)
    for i, s in enumerate(starts_ns):
        row = forks.rows[row_before(forks, int(s))].astype(np.float64)
        ask_q, bid_q = row[1 : 4 * levels : 4], row[3 : 4 * levels : 4]
        m0 = paths.mid_before(int(s))
        rets = [
            1e4 * (m0 - paths.mid_before(int(s) - lb * NS_PER_S)) / m0 for lb in RETURN_LOOKBACKS_S
        ]
        ask, bid = row[0], row[2]
        spread = (
            (ask - bid) / forks.tick_size if ask < EMPTY_ASK_PRICE and bid > EMPTY_BID_PRICE else 0
        )
        out[i] = [
            _imbalance(bid_q[0], ask_q[0]),
            _imbalance(bid_q.sum(), ask_q.sum()),
            *rets,
            spread,
        ]
    return out


def snapshot_windows(
    forks: DayForks,
    starts_ns: Sequence[int],
    length: int = SNAPSHOTS,
    levels: int = DEEPLOB_LEVELS,
) -> np.ndarray:
    """DeepLOB's input at every start: the last ``length`` book rows before it, first
    ``levels`` levels, shape (n, length, 4 * levels), float32.

    Prices become basis points from the mid of the window's last snapshot and sizes log1p
    shares: the model sees the shape and recent drift of the book rather than the day's price
    level, which on one day would let it memorise the time of day. Empty levels read 0."""
    if forks.day.levels < levels:
        raise ValueError(f"DeepLOB reads {levels} levels; the file has {forks.day.levels}")
    rows = forks.rows
    out = np.zeros((len(starts_ns), length, 4 * levels), dtype=np.float32)
    for i, s in enumerate(starts_ns):
        end = row_before(forks, int(s)) + 1
        block = rows[max(end - length, 0) : end, : 4 * levels].astype(np.float64)
        if len(block) < length:  # the day's first rows: repeat the first
            block = np.concatenate([np.repeat(block[:1], length - len(block), 0), block])
        ask_p, ask_q = block[:, 0::4], block[:, 1::4]
        bid_p, bid_q = block[:, 2::4], block[:, 3::4]
        last = block[-1]
        if last[0] < EMPTY_ASK_PRICE and last[2] > EMPTY_BID_PRICE:
            mid = (last[0] + last[2]) / 2.0
        else:  # a one-sided last snapshot: its one touch
            mid = last[0] if last[0] < EMPTY_ASK_PRICE else last[2]
        ok_a = (ask_p < EMPTY_ASK_PRICE) & (ask_q > 0)
        ok_b = (bid_p > EMPTY_BID_PRICE) & (bid_q > 0)
        w = np.empty_like(block)
        w[:, 0::4] = np.where(ok_a, 1e4 * (ask_p - mid) / mid, 0.0)
        w[:, 1::4] = np.where(ok_a, np.log1p(np.maximum(ask_q, 0)), 0.0)
        w[:, 2::4] = np.where(ok_b, 1e4 * (bid_p - mid) / mid, 0.0)
        w[:, 3::4] = np.where(ok_b, np.log1p(np.maximum(bid_q, 0)), 0.0)
        out[i] = w
    return out
