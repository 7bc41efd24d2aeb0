"""Integer bins fitted on training values, each with a sample of them to decode from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_NEG_INF = np.iinfo(np.int64).min


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
