"""Order tokenizer of the Large Market Model (MarS paper, Sec. 2.1 and App. B.2.1). numpy only.

One token per order: ``type (3) x price slot (32) x volume slot (32) x interval slot (16)`` =
49,152 ids, ``id = ((type * 32 + price_slot) * 32 + volume_slot) * 16 + interval_slot``.

- **price**: relative to the touch of the book the order arrives at (``price_codes``). ASK / BID:
  the distance in ticks from the *same* side's best price (0 = join the best, negative = behind
  it); an improvement inside the spread as the fraction of the spread it takes (so it can never
  drift past the other side when the spread narrows); a marketable order as its depth past the
  opposite best. CANCEL: the side (by price against the touch) and, in v3 tokenizers, the
  *level* it names: its rank among that side's resting levels (0 = the best), so a decoded
  cancel always lands on a level of the rollout book (v2: the ticks behind that side's best).
  Decoding uses the rollout book's current touch, so a limit order crosses only if its token is
  marketable (bins never mix marketable and passive codes, nor the two sides of a cancel). Why
  not v1's offsets from the mid or v2's cancels by ticks: docs/decisions/tokenizer-price-codes.md.
- **volume**: shares; separate bins for limit orders and for cancels. v4: the last limit slot
  (``SWEEP_SLOT``) is not a size but "exactly what rests on the other side up to the order's
  price", decoded on the book the order meets, because most aggressive orders take exactly
  that. Not the default (``surveillance train --sweep``); measurements in
  docs/decisions/tokenizer-sweep-slot.md.
- **interval**: nanoseconds since the previous order.

Bins are fitted on training data: a value that carries at least ``heavy_share`` of the mass (a
round lot of 100 shares, a zero offset, a zero interval) gets a bin of its own, the rest is cut at
quantiles. Every bin is a closed integer interval; together they cover all integers. Each bin keeps
a bounded random sample of the training values that fell into it, and decoding draws a concrete
value from that sample (so decoded values follow the empirical distribution inside the bin).

Context features of a token (the book it is paired with): log1p volumes of ``N_LEVELS`` levels per
side (zero-padded when the feed has fewer) and the log1p spread in ticks (clipped), the bucketed
mid move since the open, and the time of day. Training reads LOBSTER orderbook rows and rollouts
read ``book_rows`` of their live books (the same layout), both through ``features_from_rows``,
so identical books give identical features.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderStream, OrderType, intervals_ns
from simulator.types import NS_PER_S, Side

N_TYPES = 3
N_PRICE = 32
N_VOLUME = 32
N_INTERVAL = 16
VOCAB_SIZE = N_TYPES * N_PRICE * N_VOLUME * N_INTERVAL  # 49,152

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

TOKENIZER_VERSION = 3  # what training fits by default; v2 and v4 (``sweep``) load too
_VERSIONS = (2, 3, 4)
# v4: the last limit volume slot says "takes exactly what rests up to its price" (a sweep)
SWEEP_SLOT = N_VOLUME - 1
_SWEEP_LO = 1 << 40  # the sweep slot's lower bound: above any real quantity
# Limit price codes (see ``price_codes``): <= 0 join / behind, [1, INSIDE_STEPS] inside the spread
# as a fraction of it, >= MARKETABLE_BASE marketable (depth past the opposite best).
INSIDE_STEPS = 64
MARKETABLE_BASE = 1000
_NEG_INF = np.iinfo(np.int64).min


# ---------------------------------------------------------------------- ids
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


# ---------------------------------------------------------------------- bins
@dataclass(slots=True)
class Bins:
    """Integer bins: bin ``b`` is ``[lo[b], lo[b + 1] - 1]``; ``lo[0]`` is minus infinity.

    ``samples[b]`` is a bounded random sample of the training values in bin ``b`` (sorted).
    ``min_value`` bounds decoded values from below (1 share, 0 ns) for bins with no sample.
    """

    lo: np.ndarray  # (K,) int64, strictly increasing, lo[0] == int64 min
    samples: list[np.ndarray]
    min_value: int | None = None
    _tables: list = field(init=False, repr=False, compare=False)  # [table, count]

    def __post_init__(self) -> None:
        self.lo = np.asarray(self.lo, np.int64)
        self.samples = [np.sort(np.asarray(s, np.int64)) for s in self.samples]
        if self.lo[0] != _NEG_INF or np.any(self.lo[1:] <= self.lo[:-1]):
            raise ValueError("bin lower bounds must start at -inf and increase strictly")
        if len(self.samples) != len(self.lo):
            raise ValueError("one sample list per bin")
        k = len(self.lo)
        width = max(1, max((len(s) for s in self.samples), default=1))
        # Padded sample tables, column 0 all samples, 1 the even ones, 2 the odd ones: decoding a
        # price must keep the parity of its offset.
        table = np.zeros((k, 3, width), np.int64)
        count = np.zeros((k, 3), np.int64)
        for b, s in enumerate(self.samples):
            for col, sub in enumerate((s, s[s % 2 == 0], s[s % 2 == 1])):
                table[b, col, : len(sub)] = sub
                count[b, col] = len(sub)
        self._tables = [table, count]

    def __len__(self) -> int:
        return len(self.lo)

    def bounds(self, b: int) -> tuple[int | None, int | None]:
        """Inclusive ``(low, high)`` of bin ``b``; ``None`` for an infinite end."""
        low = None if b == 0 else int(self.lo[b])
        high = None if b == len(self.lo) - 1 else int(self.lo[b + 1]) - 1
        return low, high

    def encode(self, values) -> np.ndarray:
        return np.searchsorted(self.lo, np.asarray(values, np.int64), side="right") - 1

    def decode(
        self,
        slots,
        rng: np.random.Generator | None = None,
        parity: np.ndarray | None = None,
        u: np.ndarray | None = None,
    ) -> np.ndarray:
        """A concrete value inside each bin, drawn from the bin's empirical sample.

        The draw uses the uniforms ``u`` (one per slot) when given, else ``rng``. ``parity``
        (0/1 per value) restricts the draw to values of that parity; a bin with no sample of the
        right parity yields an in-bin integer of that parity.
        """
        slots = np.asarray(slots, np.int64)
        if u is None:
            if rng is None:
                raise ValueError("decode needs an rng or uniforms")
            u = rng.random(slots.shape)
        u = np.asarray(u, np.float64)
        if u.shape != slots.shape:
            u = np.broadcast_to(u, slots.shape)
        table, count = self._tables
        col = 0 if parity is None else 1 + np.asarray(parity) % 2
        n = count[slots, col]
        pick = np.minimum(np.floor(u * np.maximum(n, 1)), np.maximum(n - 1, 0)).astype(np.int64)
        out = table[slots, col, pick]
        missing = n == 0
        if not missing.any():
            return out
        col = np.broadcast_to(col, slots.shape)
        for idx in zip(*np.nonzero(missing), strict=True):
            p = None if parity is None else int(col[idx]) - 1
            out[idx] = self._fallback(int(slots[idx]), p, float(u[idx]))
        return out

    def _fallback(self, b: int, parity: int | None, u: float) -> int:
        lo_or_none, hi_or_none = self.bounds(b)
        if self.min_value is not None:
            lo_or_none = self.min_value if lo_or_none is None else max(lo_or_none, self.min_value)
        # an infinite end offers the two integers next to the finite one (both parities)
        if lo_or_none is None:
            high = 1 if hi_or_none is None else hi_or_none
            low = high - 1
        else:
            low = lo_or_none
            high = low + 1 if hi_or_none is None else hi_or_none
        if high < low:  # the bin lies below min_value entirely
            high = low
        value = low + min(int(u * (high - low + 1)), high - low)
        if parity is not None and value % 2 != parity:
            value = value + 1 if value + 1 <= high else value - 1
            if value < low:  # a one-integer bin of the wrong parity: step outwards
                value = low + 1
        return value

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        values,
        n_bins: int,
        rng: np.random.Generator,
        *,
        heavy_share: float = 1 / 64,
        max_samples: int = 64,
        min_value: int | None = None,
    ) -> Bins:
        """Quantile bins with a bin of its own for every value holding >= ``heavy_share``."""
        values = np.asarray(values, np.int64)
        if values.size == 0:
            values = np.array([0 if min_value is None else min_value], np.int64)
        uniq, counts = np.unique(values, return_counts=True)
        total = counts.sum()
        order = np.argsort(-counts, kind="stable")
        heavy = [int(uniq[i]) for i in order[: n_bins // 2] if counts[i] >= heavy_share * total]
        cuts: set[int] = set()
        for h in heavy:
            cuts.update((h, h + 1))
        rest = values[~np.isin(values, heavy)]
        if rest.size:
            n_rest = max(1, n_bins - len(cuts) - 1)
            qs = np.quantile(rest, np.linspace(0, 1, n_rest + 1)[1:-1], method="lower")
            cuts.update(int(q) for q in qs)
            cuts.add(int(rest.min()))
        cuts.discard(int(_NEG_INF))
        lo = _adjust_cuts(sorted(cuts), set(heavy), uniq, counts, n_bins)
        lo_arr = np.array([_NEG_INF, *lo], np.int64)
        slot = np.searchsorted(lo_arr, values, side="right") - 1
        samples = []
        for b in range(n_bins):
            in_bin = values[slot == b]
            if in_bin.size > max_samples:
                in_bin = rng.choice(in_bin, max_samples, replace=False)
            samples.append(np.sort(in_bin))
        return cls(lo_arr, samples, min_value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lo": [None, *(int(x) for x in self.lo[1:])],
            "samples": [[int(x) for x in s] for s in self.samples],
            "min_value": self.min_value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Bins:
        lo = np.array([_NEG_INF, *d["lo"][1:]], np.int64)
        return cls(lo, [np.array(s, np.int64) for s in d["samples"]], d.get("min_value"))


def _adjust_cuts(
    cuts: list[int], heavy: set[int], uniq: np.ndarray, counts: np.ndarray, n_bins: int
) -> list[int]:
    """Merge or split bins until there are exactly ``n_bins`` (``len(cuts) == n_bins - 1``)."""

    def bin_masses(cs: list[int]) -> np.ndarray:
        lo = np.array([_NEG_INF, *cs], np.int64)
        slot = np.searchsorted(lo, uniq, side="right") - 1
        return np.bincount(slot, weights=counts, minlength=len(lo))

    def is_point(cs: list[int], b: int) -> bool:
        return b > 0 and b < len(cs) and cs[b] == cs[b - 1] + 1 and cs[b - 1] in heavy

    # A bin without training data (below the smallest value, or between a point mass and the
    # next quantile cut) would waste a slot: merge it into a neighbour, a data-bearing one first.
    while len(cuts) > 0:
        mass = bin_masses(cuts)
        empty = np.flatnonzero(mass == 0)
        if empty.size == 0:
            break
        b = int(empty[0])
        if b == 0:
            del cuts[0]
        elif b == len(cuts) or not is_point(cuts, b - 1) or is_point(cuts, b + 1):
            del cuts[b - 1]  # join the bin below
        else:
            del cuts[b]  # join the bin above (the one below is a point mass)
    while len(cuts) > n_bins - 1:
        mass = bin_masses(cuts)
        best, best_mass = None, None
        for j in range(len(cuts)):  # removing cuts[j] merges bins j and j + 1
            if is_point(cuts, j) or is_point(cuts, j + 1):
                continue
            m = mass[j] + mass[j + 1]
            if best_mass is None or m < best_mass:
                best, best_mass = j, m
        if best is None:
            best = len(cuts) - 1
        del cuts[best]
    while len(cuts) < n_bins - 1:
        mass = bin_masses(cuts)
        lo = [_NEG_INF, *cuts]
        new_cut = None
        for b in np.argsort(-mass, kind="stable"):
            high = cuts[b] if b < len(cuts) else None
            sel = (uniq >= lo[b]) & (uniq < high if high is not None else True)
            u, c = uniq[sel], counts[sel]
            if len(u) < 2:
                continue
            median = int(np.searchsorted(np.cumsum(c), c.sum() / 2))
            new_cut = int(u[min(max(median, 1), len(u) - 1)])
            break
        if new_cut is None:  # nothing left to split: extend above the largest value seen
            new_cut = max([*cuts, int(uniq.max())]) + 1
        cuts = sorted({*cuts, new_cut})
    return cuts


# ---------------------------------------------------------------------- features
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


def time_of_day(ts_ns) -> np.ndarray:
    f = np.clip((np.asarray(ts_ns, np.float64) - SESSION_OPEN_NS) / SESSION_LENGTH_NS, 0.0, 1.0)
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
    return TokenFeatures(lob, mid_bucket(move_ticks), time_of_day(ts))


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


# ---------------------------------------------------------------------- tokenizer
def touch(best_ask, best_bid, price=None, tick: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Best ask and bid with empty sides filled in: one tick beyond the other side, or ``price``
    (the order's own price, so it reads as a join) when both are empty."""
    ask = np.asarray(best_ask, np.int64)
    bid = np.asarray(best_bid, np.int64)
    has_a, has_b = ask != EMPTY_ASK_PRICE, bid != EMPTY_BID_PRICE
    own = np.zeros_like(ask) if price is None else np.asarray(price, np.int64)
    ask_f = np.where(has_a, ask, np.where(has_b, bid + tick, own))
    bid_f = np.where(has_b, bid, np.where(has_a, ask - tick, own))
    return ask_f, bid_f


def price_codes(type_, price, best_ask, best_bid, tick: int = 100) -> np.ndarray:
    """Integer price codes relative to the touch the order meets.

    ASK / BID, with ``d`` the distance in ticks from the same side's best (positive = more
    aggressive) and ``s`` the spread in ticks:

    - ``d <= 0``: ``d`` (0 = join the best, negative = behind it);
    - ``0 < d < s`` (inside the spread): ``1 + floor(d * INSIDE_STEPS / s)``, in
      ``[1, INSIDE_STEPS]``, the fraction of the spread it improves by;
    - ``d >= s`` (marketable): ``MARKETABLE_BASE + d - s``, the depth past the opposite best.

    CANCEL: the side by price (as ``simulator.rollout.cancel_side``) and ``k``, ticks behind that
    side's best: ``k`` on the ask side, ``-1 - k`` on the bid side.
    """
    type_ = np.asarray(type_, np.int64)
    price = np.asarray(price, np.int64)
    ask, bid = touch(best_ask, best_bid, price, tick)
    s = np.maximum((ask - bid) // tick, 1)
    d = np.where(type_ == OrderType.BID, price - bid, ask - price) // tick
    inside = 1 + (np.maximum(d, 0) * INSIDE_STEPS) // s
    limit = np.where(d <= 0, d, np.where(d < s, inside, MARKETABLE_BASE + d - s))
    ask_side = (price >= ask) | ((price > bid) & (ask - price <= price - bid))
    cancel = np.where(ask_side, (price - ask) // tick, -1 - (bid - price) // tick)
    cancel = np.where(ask_side, np.maximum(cancel, 0), np.minimum(cancel, -1))
    return np.where(type_ == OrderType.CANCEL, cancel, limit)


def limit_prices(
    type_, code, best_ask, best_bid, code_lo=None, code_hi=None, tick: int = 100
) -> np.ndarray:
    """Inverse of ``price_codes`` for ASK / BID at the given touch.

    An inside-the-spread code is mapped to a tick inside the current spread; when ``code_lo`` /
    ``code_hi`` (the code's bin) are given, the tick is kept inside the bin whenever the spread
    has a tick there, so a token re-encodes to itself. A spread of one tick has no inside: such
    codes join. So an order is marketable only if its code is.
    """
    type_ = np.asarray(type_, np.int64)
    code = np.asarray(code, np.int64)
    ask, bid = touch(best_ask, best_bid, None, tick)
    s = np.maximum((ask - bid) // tick, 1)
    n = INSIDE_STEPS
    c = np.clip(code, 1, n)
    # ticks whose code is c: ceil((c - 1) s / n) .. ceil(c s / n) - 1
    c_lo, c_hi = -((-(c - 1) * s) // n), -((-c * s) // n) - 1
    d_in = np.where(c_lo <= c_hi, (c_lo + c_hi) // 2, (2 * c - 1) * s // (2 * n))
    if code_lo is not None and code_hi is not None:
        lo_c = np.clip(np.asarray(code_lo, np.int64), 1, n)
        hi_c = np.clip(np.asarray(code_hi, np.int64), 1, n)
        f_lo = np.maximum(-((-(lo_c - 1) * s) // n), 1)
        f_hi = np.minimum(-((-hi_c * s) // n) - 1, s - 1)
        d_in = np.where(f_lo <= f_hi, np.clip(d_in, f_lo, f_hi), d_in)
    d_in = np.where(s > 1, np.clip(d_in, 1, s - 1), 0)
    d = np.where(
        code <= 0, code, np.where(code < MARKETABLE_BASE, d_in, s + code - MARKETABLE_BASE)
    )
    price = np.where(type_ == OrderType.BID, bid + d * tick, ask - d * tick)
    return np.maximum(price, tick)


def cancel_prices(code, best_ask, best_bid, tick: int = 100) -> np.ndarray:
    """Inverse of ``price_codes`` for CANCEL: ``code`` ticks behind the ask, or ``-1 - code``
    behind the bid."""
    code = np.asarray(code, np.int64)
    ask, bid = touch(best_ask, best_bid, None, tick)
    price = np.where(code >= 0, ask + code * tick, bid + (code + 1) * tick)
    return np.maximum(price, tick)


def cancel_level_codes(price, rows, tick: int = 100) -> np.ndarray:
    """CANCEL price codes by level (v3): the side as in ``price_codes``, ``k`` the rank of the
    price among that side's levels in ``rows`` (LOBSTER layout, the book the cancel meets;
    0 = at or better than the best), ``k`` on the ask side and ``-1 - k`` on the bid side. A
    real cancel always names a visible level, so ``k`` is that level's index."""
    price = np.asarray(price, np.int64)
    rows = np.asarray(rows, np.int64)
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    ask, bid = touch(rows[..., 0], rows[..., 2], price, tick)
    ask_side = (price >= ask) | ((price > bid) & (ask - price <= price - bid))
    k_ask = (ask_px < price[..., None]).sum(-1)  # empty ask levels are +inf: never below
    k_bid = (bid_px > price[..., None]).sum(-1)  # empty bid levels are -inf: never above
    return np.where(ask_side, k_ask, -1 - k_bid).astype(np.int64)


def cancel_level_prices(code, rows, tick: int = 100) -> np.ndarray:
    """Inverse of ``cancel_level_codes`` on the book ``rows``: the price of level ``k`` of the
    side; a rank past the side's deepest level gives the deepest level; an empty side, the
    price one tick beyond the other side's best (as ``touch``)."""
    code = np.asarray(code, np.int64)
    rows = np.asarray(rows, np.int64)
    levels = rows.shape[-1] // 4
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    n_ask = (ask_px != EMPTY_ASK_PRICE).sum(-1)
    n_bid = (bid_px != EMPTY_BID_PRICE).sum(-1)
    on_ask = code >= 0
    k = np.where(on_ask, code, -1 - code)
    n = np.where(on_ask, n_ask, n_bid)
    k = np.clip(np.minimum(k, n - 1), 0, levels - 1)
    px = np.where(
        on_ask,
        np.take_along_axis(ask_px, k[..., None], -1)[..., 0],
        np.take_along_axis(bid_px, k[..., None], -1)[..., 0],
    )
    ask, bid = touch(rows[..., 0], rows[..., 2], None, tick)
    fallback = np.where(on_ask, ask, bid)
    return np.maximum(np.where(n > 0, px, fallback), tick)


def available_from_rows(type_, price, rows) -> np.ndarray:
    """Shares resting on the opposite side up to each BID / ASK's price, in LOBSTER ``rows``
    (the book the order meets): what a marketable order at that price can take."""
    type_ = np.asarray(type_, np.int64)
    p = np.asarray(price, np.int64)[..., None]
    rows = np.asarray(rows, np.int64)
    ask_px, bid_px = rows[..., 0::4], rows[..., 2::4]
    buy = (type_ == OrderType.BID)[..., None]
    take = np.where(
        buy,
        (ask_px <= p) & (ask_px != EMPTY_ASK_PRICE),
        (bid_px >= p) & (bid_px != EMPTY_BID_PRICE),
    )
    return np.where(take, np.where(buy, rows[..., 1::4], rows[..., 3::4]), 0).sum(-1)


def marketable_mask(type_, price, best_ask, best_bid) -> np.ndarray:
    """BID / ASK orders whose price reaches the opposite best (cancels never)."""
    type_ = np.asarray(type_, np.int64)
    price = np.asarray(price, np.int64)
    return ((type_ == OrderType.BID) & (price >= np.asarray(best_ask))) | (
        (type_ == OrderType.ASK) & (price <= np.asarray(best_bid))
    )


def sweep_mask(type_, price, qty, best_ask, best_bid, rows) -> np.ndarray:
    """Marketable BID / ASK orders whose size is exactly what rests up to their price."""
    available = available_from_rows(type_, price, rows)
    return (
        marketable_mask(type_, price, best_ask, best_bid)
        & (np.asarray(qty, np.int64) == available)
        & (available > 0)
    )


@dataclass(slots=True)
class DecodedOrders:
    type: np.ndarray  # int64 OrderType
    price: np.ndarray  # int64 price units, tick multiples
    qty: np.ndarray  # int64 shares >= 1
    interval_ns: np.ndarray  # int64 >= 0


class OrderTokenizer:
    """Fitted bins for price (per limit/cancel), volume (per limit/cancel) and interval."""

    def __init__(
        self,
        price: dict[str, Bins],
        volume: dict[str, Bins],
        interval: Bins,
        tick: int = 100,
        *,
        cancel_levels: bool = False,
        level_gaps: bool = False,
        sweep: bool = False,
        flow: bool = False,
        clock_span: tuple[int, int] | None = None,
        feed_depth: bool = False,
    ) -> None:
        self.price = price
        self.volume = volume
        self.interval = interval
        self.tick = tick
        # v3: cancel price codes are level ranks (``cancel_level_codes``); they need the rows
        self.cancel_levels = cancel_levels
        # the model it belongs to reads level gaps too (``features_from_rows(gaps=True)``)
        self.level_gaps = level_gaps
        # the model it belongs to reads order-flow averages too (``flow_features``), after the
        # book features
        self.flow = flow
        # the model it belongs to reads the feed's depth too (``features_from_rows(depth=...)``)
        self.feed_depth = feed_depth
        # v4: ``SWEEP_SLOT`` marks a marketable order taking exactly what rests up to its price
        self.sweep = sweep
        if sweep and not cancel_levels:
            raise ValueError("a sweep slot needs a v3 (cancels by level) tokenizer")
        # times of day (ns after midnight) of the first and last training order (``clock``)
        self.clock_span = _clock_span(clock_span)

    @property
    def version(self) -> int:
        return 4 if self.sweep else 3 if self.cancel_levels else 2

    def clock(self, ts_ns) -> np.ndarray:
        """The time of day the model's time features read for orders at ``ts_ns``: held inside
        ``clock_span``, the times the model was trained on (unchanged without a span).

        A rollout past the end of the training span would otherwise feed the time features
        values the model never saw, and their sines and cosines do not extrapolate: past 14:30
        the 2-pi pair turns back towards the values of the open. Measurements:
        docs/decisions/held-clock.md.
        """
        ts = np.asarray(ts_ns, np.int64)
        if self.clock_span is None:
            return ts
        return np.clip(ts, *self.clock_span)

    def rollout_features(
        self, rows: np.ndarray, open_mid: float, ts_ns, depth: int | None = None
    ) -> TokenFeatures:
        """What a rollout feeds the model for books ``rows`` at ``ts_ns``: ``features_from_rows``
        with this tokenizer's tick, level gaps and (``feed_depth``) the feed's ``depth``, its
        time features read at ``clock``."""
        if self.feed_depth and depth is None:
            raise ValueError("this tokenizer's features include the feed depth: pass depth")
        return features_from_rows(
            rows,
            open_mid,
            self.clock(ts_ns),
            self.tick,
            self.level_gaps,
            depth if self.feed_depth else None,
        )

    # ------------------------------------------------------------------ fields
    def encode_fields(
        self, type_, price, qty, interval_ns, best_ask, best_bid, rows=None
    ) -> np.ndarray:
        """Token ids of orders given the best ask and bid of the book each meets (and, for a
        v3 tokenizer, that book's ``rows``, LOBSTER layout)."""
        type_ = np.asarray(type_, np.int64)
        code = price_codes(type_, price, best_ask, best_bid, self.tick)
        cancel = type_ == OrderType.CANCEL
        if self.cancel_levels:
            if rows is None:
                raise ValueError("a v3 tokenizer encodes cancels by level: pass the book rows")
            code = np.where(cancel, cancel_level_codes(price, rows, self.tick), code)
        price_slot = np.where(
            cancel, self.price["cancel"].encode(code), self.price["limit"].encode(code)
        )
        volume_slot = np.where(
            cancel, self.volume["cancel"].encode(qty), self.volume["limit"].encode(qty)
        )
        if self.sweep:
            sweep = sweep_mask(type_, price, qty, best_ask, best_bid, rows)
            volume_slot = np.where(sweep, SWEEP_SLOT, volume_slot)
        return token_id(type_, price_slot, volume_slot, self.interval.encode(interval_ns))

    def encode(self, stream: OrderStream, rows_before: np.ndarray, prev_ts_ns: int | None = None):
        """Token ids of a stream; ``rows_before[i]`` is the book row just before order ``i``."""
        interval = intervals_ns(stream.ts_ns, prev_ts_ns)
        rows = np.asarray(rows_before, np.int64)
        return self.encode_fields(
            stream.type, stream.price, stream.qty, interval, rows[:, 0], rows[:, 2], rows
        )

    def decode(
        self,
        ids,
        best_ask,
        best_bid,
        rng: np.random.Generator | None = None,
        u: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> DecodedOrders:
        """Concrete orders for token ids at books with the given best ask and bid (v3: and the
        books' ``rows``, to find the level a cancel names).

        Draws use ``u`` (shape ``ids.shape + (3,)``: price, volume, interval) when given, so a
        caller can keep one random stream per sequence; otherwise ``rng``. A BID / ASK crosses
        the book only if its token is marketable.
        """
        ids = np.asarray(ids, np.int64)
        if u is None:
            if rng is None:
                raise ValueError("decode needs an rng or uniforms")
            u = rng.random((*ids.shape, 3))
        type_, ps, vs, is_ = token_fields(ids)
        ask = np.broadcast_to(np.asarray(best_ask, np.int64), ids.shape)
        bid = np.broadcast_to(np.asarray(best_bid, np.int64), ids.shape)
        cancel = type_ == OrderType.CANCEL
        price = np.empty(ids.shape, np.int64)
        qty = np.empty(ids.shape, np.int64)
        at = (
            None
            if rows is None
            else np.broadcast_to(np.asarray(rows, np.int64), (*ids.shape, rows.shape[-1]))
        )
        for kind, sel in (("limit", ~cancel), ("cancel", cancel)):
            if not sel.any():
                continue
            uk = u[sel]  # (n, 3)
            bins = self.price[kind]
            code = bins.decode(ps[sel], u=uk[:, 0])
            if kind == "cancel" and self.cancel_levels:
                if at is None:
                    raise ValueError("a v3 tokenizer decodes cancels by level: pass the rows")
                price[sel] = cancel_level_prices(code, at[sel], self.tick)
            elif kind == "cancel":
                price[sel] = cancel_prices(code, ask[sel], bid[sel], self.tick)
            else:
                lo = bins.lo[ps[sel]]
                hi = np.append(bins.lo[1:] - 1, np.iinfo(np.int64).max)[ps[sel]]
                price[sel] = limit_prices(type_[sel], code, ask[sel], bid[sel], lo, hi, self.tick)
            qty[sel] = self.volume[kind].decode(vs[sel], u=uk[:, 1])
        if self.sweep and at is not None:
            sweep = (vs == SWEEP_SLOT) & marketable_mask(type_, price, ask, bid)
            available = available_from_rows(type_[sweep], price[sweep], at[sweep])
            qty[sweep] = np.where(available > 0, available, qty[sweep])
        return DecodedOrders(
            type_, price, np.maximum(qty, 1), np.maximum(self.interval.decode(is_, u=u[..., 2]), 0)
        )

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        type_,
        price,
        qty,
        interval_ns,
        best_ask,
        best_bid,
        *,
        seed: int = 0,
        tick: int = 100,
        max_samples: int = 64,
        rows=None,
        sweep: bool = False,
    ) -> OrderTokenizer:
        """Fit all bins on training orders (``best_ask`` / ``best_bid``: the touch each met).

        With ``rows`` (the book each order met) the tokenizer is v3: cancels by level rank.
        ``sweep`` (needs ``rows``) makes it v4: marketable orders that take exactly what rests
        up to their price get ``SWEEP_SLOT``, and the other limit sizes share the other 31 bins.
        """
        if sweep and rows is None:
            raise ValueError("a sweep slot needs the book rows")
        rng = np.random.default_rng(seed)
        type_ = np.asarray(type_, np.int64)
        qty = np.asarray(qty, np.int64)
        off = price_codes(type_, price, best_ask, best_bid, tick)
        cancel = type_ == OrderType.CANCEL
        if rows is not None:
            off = np.where(cancel, cancel_level_codes(price, rows, tick), off)

        def bins(values, k: int, min_value: int | None = None) -> Bins:
            return Bins.fit(values, k, rng, max_samples=max_samples, min_value=min_value)

        price_bins = {
            # no bin may mix marketable and passive codes, or the two sides of the book
            "limit": _bins_with_edge(off[~cancel], N_PRICE, MARKETABLE_BASE, 3, rng, max_samples),
            "cancel": _bins_with_edge(off[cancel], N_PRICE, 0, N_PRICE // 2, rng, max_samples),
        }
        limit = ~cancel
        if sweep:
            swept = sweep_mask(type_, price, qty, best_ask, best_bid, rows)
            limit &= ~swept
        volume_bins = {
            "limit": bins(qty[limit], N_VOLUME - 1 if sweep else N_VOLUME, 1),
            "cancel": bins(qty[cancel], N_VOLUME, 1),
        }
        if sweep:
            # the sweep slot decodes (off a marketable price) to a size some sweep had
            plain = volume_bins["limit"]
            sizes = qty[swept] if swept.any() else np.array([1], np.int64)
            if sizes.size > max_samples:
                sizes = rng.choice(sizes, max_samples, replace=False)
            volume_bins["limit"] = Bins(
                np.append(plain.lo, _SWEEP_LO), [*plain.samples, np.sort(sizes)], plain.min_value
            )
        interval_bins = bins(interval_ns, N_INTERVAL, 0)
        return cls(
            price_bins,
            volume_bins,
            interval_bins,
            tick,
            cancel_levels=rows is not None,
            sweep=sweep,
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tick": self.tick,
            "vocab_size": VOCAB_SIZE,
            "slots": {
                "type": N_TYPES,
                "price": N_PRICE,
                "volume": N_VOLUME,
                "interval": N_INTERVAL,
            },
            "features": {
                "levels": N_LEVELS,
                "lob_scale": LOB_SCALE,
                "mid_max_bucket": MID_MAX_BUCKET,
                "tod_dim": TOD_DIM,
                "spread_max_ticks": SPREAD_MAX_TICKS,
                "spread_scale": SPREAD_SCALE,
                **({"level_gaps": True, "gap_scale": GAP_SCALE} if self.level_gaps else {}),
                **({"feed_depth": True} if self.feed_depth else {}),
                **(
                    {
                        "flow": True,
                        "flow_half_lives": list(FLOW_HALF_LIVES),
                        "flow_signals": list(FLOW_SIGNALS),
                        "flow_prior": FLOW_PRIOR.tolist(),
                    }
                    if self.flow
                    else {}
                ),
                **({"clock_span_ns": list(self.clock_span)} if self.clock_span is not None else {}),
            },
            "price_codes": {
                "inside_steps": INSIDE_STEPS,
                "marketable_base": MARKETABLE_BASE,
            },
            "price": {k: b.to_dict() for k, b in self.price.items()},
            "volume": {k: b.to_dict() for k, b in self.volume.items()},
            "interval": self.interval.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrderTokenizer:
        if d.get("version") not in _VERSIONS:
            raise ValueError(f"unsupported tokenizer version {d.get('version')!r}")
        features = d.get("features", {})
        return cls(
            {k: Bins.from_dict(b) for k, b in d["price"].items()},
            {k: Bins.from_dict(b) for k, b in d["volume"].items()},
            Bins.from_dict(d["interval"]),
            int(d["tick"]),
            cancel_levels=d["version"] >= 3,
            sweep=d["version"] >= 4,
            level_gaps=bool(features.get("level_gaps", False)),
            flow=_flow_from_dict(features),
            clock_span=features.get("clock_span_ns"),
            feed_depth=bool(features.get("feed_depth", False)),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @property
    def lob_dim(self) -> int:
        """Width of the ``lob`` features the model of this tokenizer reads."""
        return (
            (LOB_DIM_GAPS if self.level_gaps else LOB_DIM)
            + (DEPTH_DIM if self.feed_depth else 0)
            + (FLOW_DIM if self.flow else 0)
        )

    @classmethod
    def load(cls, path: str | Path) -> OrderTokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _bins_with_edge(
    values, n_bins: int, edge: int, n_above: int, rng: np.random.Generator, max_samples: int
) -> Bins:
    """``Bins.fit``, unless that puts ``edge - 1`` and ``edge`` in one bin: then the values below
    and from ``edge`` on are fitted apart (``n_bins - n_above`` and ``n_above`` bins)."""
    values = np.asarray(values, np.int64)
    bins = Bins.fit(values, n_bins, rng, max_samples=max_samples)
    if edge in bins.lo.tolist():
        return bins
    below, above = values[values < edge], values[values >= edge]
    lo_below = Bins.fit(below if below.size else [edge - 1], n_bins - n_above, rng).lo[1:]
    lo_above = Bins.fit(above if above.size else [edge], n_above, rng).lo[1:]
    lo = [_NEG_INF, *(c for c in lo_below if c < edge), edge, *(c for c in lo_above if c > edge)]
    while len(lo) < n_bins:  # a part with too few distinct values: empty bins at the top
        lo.append(lo[-1] + 1)
    lo_arr = np.array(lo[:n_bins], np.int64)
    slot = np.searchsorted(lo_arr, values, side="right") - 1
    samples = []
    for b in range(n_bins):
        in_bin = values[slot == b]
        if in_bin.size > max_samples:
            in_bin = rng.choice(in_bin, max_samples, replace=False)
        samples.append(np.sort(in_bin))
    return Bins(lo_arr, samples)


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs (then back-fill a leading run) of a 1-d array."""
    x = np.asarray(x, np.float64).copy()
    bad = np.isnan(x)
    if not bad.any():
        return x
    if bad.all():
        raise ValueError("no book row with a price to take a mid from")
    idx = np.where(~bad, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    x = x[idx]
    first = np.flatnonzero(~np.isnan(x))[0]
    x[:first] = x[first]
    return x


def _clock_span(span) -> tuple[int, int] | None:
    if span is None:
        return None
    lo, hi = (int(t) for t in span)
    if not 0 <= lo <= hi:
        raise ValueError(f"clock span must be two times of day, first <= last: {span!r}")
    return lo, hi


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
