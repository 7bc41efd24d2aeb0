"""Context features of a token: the book it is paired with (volumes, spread, optional level
gaps and feed depth), the mid move since the open and the time of day; LOBSTER-style book rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.types import Side
from simulator.units import NS_PER_S

N_LEVELS = 10  # LOB levels per side in the features (AMZN level-5 files are zero-padded)
LOB_DIM = 2 * N_LEVELS + 1  # ask levels 1..N, bid levels 1..N, then the spread
# with level gaps (``features_from_rows(gaps=True)``): then, per side, the distance in ticks of
# levels 2..N from that side's best, log1p(ticks) / GAP_SCALE (0 for an empty level)
LOB_DIM_GAPS = LOB_DIM + 2 * (N_LEVELS - 1)
# Measured: gaps help GOOG and cost AMZN; neither bundled model uses them:
# docs/decisions/tokenizer-level-gaps.md.
GAP_SCALE = 4.0
# With the feed depth (``features_from_rows(depth=...)``): one more column, the levels per side
# the feed shows / N_LEVELS, so that a drained level-10 rollout book is not read as a level-5
# feed. Used by ``lmm-depth``, not the default model: docs/decisions/tokenizer-depth-features.md.
DEPTH_DIM = 1
LOB_SCALE = 8.0  # log1p(shares) / LOB_SCALE keeps typical level volumes in ~[0, 1.2]
SPREAD_MAX_TICKS = 100  # spread feature: log1p(min(spread ticks, 100)) / SPREAD_SCALE
SPREAD_SCALE = 4.0
MID_MAX_BUCKET = 10  # mid move buckets: sign * ceil(log2(1 + |ticks|)), clipped to +-10
N_MID_BUCKETS = 2 * MID_MAX_BUCKET + 1
TOD_DIM = 4
SESSION_OPEN_NS = (9 * 3600 + 1800) * NS_PER_S  # 09:30
SESSION_LENGTH_NS = int(6.5 * 3600) * NS_PER_S  # to 16:00


@dataclass(slots=True)
class TokenFeatures:
    """Context of one token or a batch of tokens (leading dimensions shared)."""

    lob: np.ndarray  # (..., LOB_DIM) float32: log1p(level volume) / LOB_SCALE
    mid_bucket: np.ndarray  # (...,) int64 in [0, N_MID_BUCKETS)
    tod: np.ndarray  # (..., TOD_DIM) float32 time-of-day terms


def mid2_from_rows(rows: np.ndarray, fallback2: float | np.ndarray) -> np.ndarray:
    """Twice the mid of LOBSTER rows (an integer in price units); a one-sided book uses its best
    price, an empty one ``fallback2``."""
    rows = np.asarray(rows, np.int64)
    ask, bid = rows[..., 0], rows[..., 2]
    has_ask, has_bid = ask != EMPTY_ASK_PRICE, bid != EMPTY_BID_PRICE
    mid2 = np.where(
        has_ask & has_bid,
        ask + bid,
        np.where(has_ask, 2 * ask, np.where(has_bid, 2 * bid, 0)),
    ).astype(np.float64)
    return np.where(has_ask | has_bid, mid2, fallback2)


def mid_bucket(move_ticks) -> np.ndarray:
    """Signed log2 buckets of the mid move since the open (in ticks), shifted to [0, N)."""
    move = np.asarray(move_ticks, np.float64)
    b = np.minimum(np.ceil(np.log2(1.0 + np.abs(move))), MID_MAX_BUCKET)
    return (np.sign(move) * b).astype(np.int64) + MID_MAX_BUCKET


def time_of_day(ts_ns, session: tuple[int, int] | None = None) -> np.ndarray:
    """Sines and cosines of the share of the session elapsed. ``session``: its open (ns after
    midnight) and length; None is the NASDAQ day the bundled models were trained on."""
    open_ns, length_ns = (SESSION_OPEN_NS, SESSION_LENGTH_NS) if session is None else session
    f = np.clip((np.asarray(ts_ns, np.float64) - open_ns) / length_ns, 0.0, 1.0)
    out = np.stack(
        [np.sin(np.pi * f), np.cos(np.pi * f), np.sin(2 * np.pi * f), np.cos(2 * np.pi * f)], -1
    )
    return out.astype(np.float32)


def features_from_rows(
    rows: np.ndarray,
    open_mid: float,
    ts_ns,
    tick: int = 100,
    gaps: bool = False,
    depth: int | None = None,
    session: tuple[int, int] | None = None,
) -> TokenFeatures:
    """Features of LOBSTER rows ``(..., 4 * levels)`` at times ``ts_ns`` (broadcast).

    ``gaps``: also where the levels are (``LOB_DIM_GAPS``): without them a model sees how much
    rests at each level but not at which price, so it cannot tell a book with one-tick gaps
    from one with five-tick gaps.

    ``depth``: also how many levels per side the feed shows (``DEPTH_DIM``, the last column).
    Without it a model can only tell a level-5 feed from a level-10 one by its empty levels
    6 to 10, and reads a level-10 rollout book that has drained to five levels as the other
    instrument (see ``hide_levels``)."""
    rows = np.asarray(rows, np.int64)
    levels = rows.shape[-1] // 4
    if levels > N_LEVELS:
        rows = rows[..., : 4 * N_LEVELS]
        levels = N_LEVELS
    width = (LOB_DIM_GAPS if gaps else LOB_DIM) + (DEPTH_DIM if depth is not None else 0)
    lob = np.zeros((*rows.shape[:-1], width), np.float32)
    if depth is not None:
        if not 1 <= depth <= N_LEVELS:
            raise ValueError(f"feed depth must be in [1, {N_LEVELS}], got {depth}")
        lob[..., -1] = depth / N_LEVELS
    if gaps and levels > 1:
        ask_px, bid_px = rows[..., 4::4], rows[..., 6::4]  # levels 2..N
        d_ask = np.where(ask_px != EMPTY_ASK_PRICE, (ask_px - rows[..., :1]) // tick, 0)
        d_bid = np.where(bid_px != EMPTY_BID_PRICE, (rows[..., 2:3] - bid_px) // tick, 0)
        n = levels - 1
        lob[..., LOB_DIM : LOB_DIM + n] = np.log1p(np.clip(d_ask, 0, None)) / GAP_SCALE
        lob[..., LOB_DIM + N_LEVELS - 1 : LOB_DIM + N_LEVELS - 1 + n] = (
            np.log1p(np.clip(d_bid, 0, None)) / GAP_SCALE
        )
    lob[..., :levels] = np.log1p(rows[..., 1::4]) / LOB_SCALE
    lob[..., N_LEVELS : N_LEVELS + levels] = np.log1p(rows[..., 3::4]) / LOB_SCALE
    ask, bid = rows[..., 0], rows[..., 2]
    both = (ask != EMPTY_ASK_PRICE) & (bid != EMPTY_BID_PRICE)
    spread = np.where(both, np.clip((ask - bid) // tick, 0, SPREAD_MAX_TICKS), 0)
    lob[..., 2 * N_LEVELS] = np.log1p(spread) / SPREAD_SCALE
    mid2 = mid2_from_rows(rows, 2.0 * open_mid)
    move_ticks = (mid2 / 2.0 - open_mid) / tick
    ts = np.broadcast_to(np.asarray(ts_ns, np.int64), rows.shape[:-1])
    return TokenFeatures(lob, mid_bucket(move_ticks), time_of_day(ts, session))


def hide_levels(
    lob: np.ndarray, visible_ask, visible_bid, depth: int, gaps: bool = False
) -> np.ndarray:
    """Book features ``lob (..., width)`` as if each side showed only its best ``visible_ask``
    / ``visible_bid`` levels (broadcast over the leading dimensions), in place; returns ``lob``.

    Levels ``visible + 1`` to ``depth`` read as empty: volume 0 and, with ``gaps``, gap 0, as
    ``features_from_rows`` writes an empty level. Training with some windows hidden this way
    (``surveillance train --level-dropout``) shows the model books like those of a rollout,
    which cannot see what would enter its depth from below and drains (GOOG level-10 rollouts
    hold about 7 levels per side on average)."""
    va = np.asarray(visible_ask, np.int64)[..., None]
    vb = np.asarray(visible_bid, np.int64)[..., None]
    k = np.arange(N_LEVELS)
    in_feed = k < depth
    lob[..., :N_LEVELS] *= ~((k >= va) & in_feed)
    lob[..., N_LEVELS : 2 * N_LEVELS] *= ~((k >= vb) & in_feed)
    if gaps:  # the gap of level j (2..N) sits at LOB_DIM + j - 2 (asks), + N_LEVELS - 1 (bids)
        g = k[1:]
        lob[..., LOB_DIM : LOB_DIM + N_LEVELS - 1] *= ~((g >= va) & (g < depth))
        lob[..., LOB_DIM + N_LEVELS - 1 : LOB_DIM_GAPS] *= ~((g >= vb) & (g < depth))
    return lob


def book_rows(books: list[OrderBook], levels: int = N_LEVELS) -> np.ndarray:
    """LOBSTER-style rows ``(len(books), 4 * levels)``, equal to ``book.snapshot(levels)``.

    Built from plain lists in one pass: ~3x cheaper than a ``snapshot`` per book, which matters
    at one call per rollout per generated order.
    """
    out = []
    empty = [EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0] * levels
    for book in books:
        row = empty.copy()
        for i, (price, qty) in enumerate(book.depth(Side.ASK, levels)):
            row[4 * i] = price
            row[4 * i + 1] = qty
        for i, (price, qty) in enumerate(book.depth(Side.BID, levels)):
            row[4 * i + 2] = price
            row[4 * i + 3] = qty
        out.append(row)
    return np.array(out, dtype=np.int64).reshape(len(books), 4 * levels)


def pad_rows(rows: np.ndarray, levels: int = N_LEVELS) -> np.ndarray:
    """LOBSTER rows widened (or cut) to ``levels`` levels, empty levels as the file writes them."""
    rows = np.asarray(rows, np.int64)
    have = rows.shape[-1] // 4
    if have >= levels:
        return rows[..., : 4 * levels]
    out = np.zeros((*rows.shape[:-1], 4 * levels), np.int64)
    out[..., 0::4] = EMPTY_ASK_PRICE
    out[..., 2::4] = EMPTY_BID_PRICE
    out[..., : 4 * have] = rows
    return out
