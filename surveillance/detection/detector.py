"""The simulation-versus-real detector: overlaps turned into a calibrated score, and baselines.

MarS (Sec. 4.2, App. G) forks simulated futures at a window's start and compares the real
window's spread distribution with the simulated one by the overlap coefficient (OVL); normal
periods overlap more than manipulated ones. A raw OVL is not comparable across windows, facts
or instruments: a quiet window with few events has a noisy OVL even when nothing is wrong. So
every fact's real-versus-simulation OVL is judged against what the same fork produces for
futures that are normal by construction: each rollout in turn is left out and compared with the
pool of the others (simulation versus simulation). Per fact this gives

- ``ovl``: OVL(real window, pool of all rollouts);
- the null sample ``OVL(rollout j, pool of the other rollouts)`` for every j, summarized by its
  mean and standard deviation;
- ``z = (ovl - null mean) / null std`` (negative: the real window is less like the simulation
  than the simulation is like itself), and the empirical p-value
  ``(1 + #{j : null_j <= ovl}) / (N + 1)``.

For the tail facts (``surveillance.detection.metrics.TAIL_FACTS``: order and cancel sizes, fleeting orders
left out, in the whole book and at the touch; marketable orders' size over the touch they hit)
the overlap is that of the two distributions cut at a high quantile (``overlap_tail``),
the cut floored by the real window before the fork (``SimulationNull``); the sweep tail is cut
at a fixed ratio of 1 instead (``TailCut.at``). The null standard deviation of a tail fact is
floored at one sample's share rather than ``MIN_NULL_STD``.

Facts combine into one score, ``S = -sum(z_f) / sqrt(F)`` (Stouffer's form; larger is more
anomalous), and its p-value comes from the same leave-one-out construction: each rollout's own
``S_j`` (its facts' z against the other rollouts) is a draw of S under the model, so
``p = (1 + #{j : S_j >= S}) / (N + 1)``; where that resolution (1 / (N + 1)) is too coarse the
normal tail of the fitted null is reported too (``p_value_normal``).

The alert threshold is not a constant: ``Calibration`` takes the scores of windows known to be
normal and sets the threshold at the quantile that gives the target false-alarm rate.

The raw score assumes every fact's z is N(0, 1) on a normal window, which holds only for a
perfect simulator. ``Calibration.fit_normal`` therefore also learns, per instrument, how each
fact's z behaves on normal windows (``FactNorms``: median and robust spread); the calibrated
score is the 4-norm of the vector of standardized shortfalls (facts less like the simulation
than usual for this simulator and instrument), and the threshold is fitted on it. A fact the
simulator always gets wrong stops drowning the others, and a manipulation that shows on one
or two facts is not averaged away by the rest.

Scenarios (``SCENARIOS``) score a family of facts apart: the sweep facts that aggressive
manipulation moves, whose shortfalls the omnibus 4-norm loses among clean windows that fall short
on other facts. Each has its own threshold, fitted on the same normal windows; the omnibus
threshold and the scenarios' split the target false-alarm rate equally (so a calibration needs
``(k + 1) / far`` normal windows for k scenarios), and a window a scenario flags scores at least
the scenario's score on the omnibus threshold's scale (``Calibration.score``). A window read
cold has no scenarios yet: its omnibus score alone decides, and ``Calibration.keeps`` judges
its own windows by the omnibus score (with scenarios, against the omnibus threshold at its
share of the rate, while the adapted cold threshold is a quantile of all normal scores).

The open and the close are not midday: their flow differs from the hours the norms mostly
see, so a fact's z shifts there on normal windows too
(docs/decisions/time-of-day-calibration.md). The calibration therefore reads every window in its
time-of-day bucket (``surveillance.detection.timeofday``: open, midday, close): an
instrument's norms are fitted on its midday windows, and a bucket's shift and spread of the
standardized z are fitted on the *other* instruments' windows in that bucket (leave one
instrument out: with one day per instrument, the close of one calibrates the other's). The
threshold applies to the time-of-day-adjusted scores.

Two baselines are computed on the same windows:

- ``historical_diff``: the traditional Diff(market now, market past): 1 - mean OVL of each fact
  between the window and the instrument's earlier windows (pooled);
- ``spread_zscore``: the rule |mean spread - mean of earlier windows' mean spreads| / their std.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from math import erf, sqrt
from pathlib import Path
from typing import Any

import numpy as np

from surveillance.detection.coldstart import (
    ADAPTED,
    ADAPTING,
    CALIBRATED,
    MIN_OWN_WINDOWS,
    POOLED_STATUS,
    ColdState,
    Profile,
    likeness,
    own_weight,
    weighted_quantile_threshold,
)
from surveillance.detection.metrics import (
    AGGRESSIVE_FACTS,
    DISCRETE_FACTS,
    FOOTPRINT_FACTS,
    TAIL_FACTS,
    Trajectory,
    overlap_at,
    overlap_continuous,
    overlap_discrete,
    overlap_tail,
)
from surveillance.detection.metrics import window_facts as _window_facts
from surveillance.detection.timeofday import MIDDAY, REFERENCE, TimeOfDay

# Facts the detector scores. The 2..5-minute returns add little beyond the 1-minute one on a
# 25-minute window (they share most of their samples) and would weigh price moves five times.
# ``max_sweep`` (ticks one marketable order moved the touch) is left out: on a book whose levels
# are several ticks apart it measures the gaps behind the touch as much as the walk, and the
# order model's gaps are narrower than the market's (GOOG, first to second level: 2.6 ticks on
# average in rollouts, 4.5 real), so an ordinary take of one level reads as a sweep and the
# fact's swings on clean windows were the largest shortfalls of the benchmark's false alarms.
# ``sweep_ratio`` measures the walk in shares, which the gaps do not enter. The tails end with
# the aggressive facts (``sweep_bursts``, ``sweep_pressure``: metrics.AGGRESSIVE_FACTS).
DETECTION_FACTS: tuple[str, ...] = (
    "spread",
    "spread_time_weighted",
    "volatility",
    "mean_order_volume",
    "aggressive_order_ratio",
    "buy_order_ratio",
    "cancel_ratio",
    "return_1m",
    "inter_arrival",
    *(f for f in FOOTPRINT_FACTS if f != "max_sweep"),
    *TAIL_FACTS,
)

FactSamples = dict[str, tuple[np.ndarray, np.ndarray | None]]


def window_facts(trajectory: Trajectory) -> FactSamples:
    return _window_facts(trajectory)


def _overlap(
    fact: str,
    a: tuple[np.ndarray, np.ndarray | None],
    b: tuple,
    floor: float | None = None,
) -> float | None:
    (va, wa), (vb, wb) = a, b
    if len(va) == 0 or len(vb) == 0:
        return None
    if fact in DISCRETE_FACTS:
        return overlap_discrete(va, vb, wa, wb)
    if fact in TAIL_FACTS:
        cut = TAIL_FACTS[fact]
        if cut.at is not None:
            return overlap_at(va, vb, cut.at)
        return overlap_tail(va, vb, cut.quantile, floor)  # type: ignore[arg-type]
    return overlap_continuous(va, vb)


def _min_std(fact: str, samples: int) -> float:
    """The floor of a fact's null standard deviation: ``MIN_NULL_STD`` for a density overlap;
    for a tail fact, whose overlap moves in steps of one sample's share, that step
    (``1 / samples``), so one sample beyond the simulation's range is worth z = -1."""
    if fact in TAIL_FACTS:
        return 1.0 / max(samples, 1)
    return MIN_NULL_STD


def _pool(samples: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> tuple:
    values = [s[0] for s in samples]
    weights = [s[1] for s in samples]
    v = np.concatenate(values) if values else np.zeros(0)
    if any(w is None for w in weights) or not weights:
        return v, None
    return v, np.concatenate(weights)  # type: ignore[arg-type]


def _spans_intersect(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


def _reference_windows(
    windows: Sequence[tuple[str, float | None, Mapping[str, float | None]]], bucket: Sequence[str]
) -> dict[str, list[int]]:
    """Per instrument, the indices of its windows in the reference bucket (midday)."""
    out: dict[str, list[int]] = {}
    for k, (inst, _, _) in enumerate(windows):
        out.setdefault(inst, [])
        if bucket[k] == REFERENCE:
            out[inst].append(k)
    return out


def _at(spans: Sequence[tuple[int, int]] | None, k: int) -> tuple[int, int] | None:
    return None if spans is None else spans[k]


def _normal_sf(x: float) -> float:
    return 0.5 * (1 - erf(x / sqrt(2)))


@dataclass(slots=True)
class FactEvidence:
    ovl: float | None
    null_mean: float | None = None
    null_std: float | None = None
    null: list[float] = field(default_factory=list)
    z: float | None = None
    p_value: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class Verdict:
    """The detector's verdict on one window (before the alert threshold is applied)."""

    score: float | None
    p_value: float | None
    p_value_normal: float | None
    facts: dict[str, FactEvidence]
    null_scores: list[float]
    rollouts: int

    def fact_z(self) -> dict[str, float | None]:
        return {f: e.z for f, e in self.facts.items()}

    def diverged(self, z: float = -2.0) -> list[str]:
        """Facts whose real OVL lies more than ``-z`` null standard deviations below the null
        mean, most surprising first. (A z cut rather than a p cut: with N rollouts the smallest
        empirical p-value is 1 / (N + 1), too coarse to rank facts.)"""
        hits = [(e.z, f) for f, e in self.facts.items() if e.z is not None]
        return [f for value, f in sorted(hits) if value < z]


# Null statistics are clipped away from 0 so a fact whose rollouts agree perfectly (a constant
# spread of one tick, say) does not turn a tiny difference into an infinite z.
MIN_NULL_STD = 0.02


@dataclass(slots=True)
class _FactNull:
    pooled: tuple[np.ndarray, np.ndarray | None]
    null: np.ndarray  # OVL(rollout j, pool of the others); NaN where undefined
    null_z: np.ndarray  # rollout j's z against the null of the others
    floor: float | None = None  # tail facts: the reference window's quantile (the cut's floor)


@dataclass(slots=True)
class SimulationNull:
    """What the rollouts of one fork say a normal window looks like, per fact.

    Fitting it is the expensive part of scoring (N leave-one-out overlaps per fact); a fitted
    null scores any number of real windows forked from the same book (a clean window and its
    manipulated variants, say) at the cost of one overlap per fact each.

    ``reference``: the facts of the real window before the fork (the model's context). A tail
    fact cut at a quantile is cut at the higher of the simulation's quantile and the
    reference's: only what lies beyond both the simulated futures and the market's own recent
    past counts. An order model rarely learns the far tail (the session's close brings orders it
    has never seen), and without the floor every unusual-but-real order size would read as a
    divergence. A fact with a fixed cut (``TailCut.at``) ignores the reference.
    """

    facts: tuple[str, ...]
    rollouts: int
    per_fact: dict[str, _FactNull]

    @classmethod
    def fit(
        cls,
        sims: Sequence[Trajectory | FactSamples],
        facts: Sequence[str] = DETECTION_FACTS,
        reference: Trajectory | FactSamples | None = None,
    ) -> SimulationNull:
        n = len(sims)
        if n < 3:
            raise ValueError(f"calibrating against the simulation needs >= 3 rollouts, got {n}")
        sims_f = [s if isinstance(s, dict) else window_facts(s) for s in sims]
        ref_f = reference if reference is None or isinstance(reference, dict) else None
        if reference is not None and ref_f is None:
            ref_f = window_facts(reference)  # type: ignore[arg-type]
        per_fact: dict[str, _FactNull] = {}
        for fact in facts:
            per_rollout = [s[fact] for s in sims_f]
            floor = None
            q = TAIL_FACTS[fact].quantile if fact in TAIL_FACTS else None
            if q is not None and ref_f is not None and len(ref_f[fact][0]):
                floor = float(np.quantile(ref_f[fact][0], q))
            null = []
            for j in range(n):
                others = _pool(per_rollout[:j] + per_rollout[j + 1 :])
                null.append(_overlap(fact, per_rollout[j], others, floor))
            null_arr = np.array([np.nan if x is None else x for x in null], dtype=np.float64)
            null_z = np.full(n, np.nan)
            ok = np.isfinite(null_arr)
            if ok.sum() >= 3:
                # each rollout's z against the null of the others (leave-one-out of the null)
                for j in np.flatnonzero(ok):
                    rest = np.delete(null_arr, j)
                    rest = rest[np.isfinite(rest)]
                    sd = max(float(rest.std(ddof=1)), _min_std(fact, len(per_rollout[j][0])))
                    null_z[j] = (null_arr[j] - rest.mean()) / sd
            per_fact[fact] = _FactNull(_pool(per_rollout), null_arr, null_z, floor)
        return cls(tuple(facts), n, per_fact)

    def score(self, real: Trajectory | FactSamples) -> Verdict:
        """Score a real window forked from the same book as the rollouts."""
        real_f = real if isinstance(real, dict) else window_facts(real)
        n = self.rollouts
        evidence: dict[str, FactEvidence] = {}
        real_z = np.full(len(self.facts), np.nan)
        null_z = np.full((n, len(self.facts)), np.nan)
        for col, fact in enumerate(self.facts):
            fn = self.per_fact[fact]
            ovl = _overlap(fact, real_f[fact], fn.pooled, fn.floor)
            ok = np.isfinite(fn.null)
            if ovl is None or ok.sum() < 3:
                evidence[fact] = FactEvidence(ovl, null=[float(x) for x in fn.null[ok]])
                continue
            mean = float(fn.null[ok].mean())
            std = max(float(fn.null[ok].std(ddof=1)), _min_std(fact, len(real_f[fact][0])))
            z = (ovl - mean) / std
            p = (1 + int((fn.null[ok] <= ovl).sum())) / (ok.sum() + 1)
            evidence[fact] = FactEvidence(
                ovl, mean, std, [round(float(x), 6) for x in fn.null[ok]], z, p
            )
            real_z[col] = z
            null_z[:, col] = fn.null_z
        used = np.isfinite(real_z)
        if not used.any():
            return Verdict(None, None, None, evidence, [], n)
        score = float(-real_z[used].sum() / sqrt(used.sum()))
        null_scores = -np.nansum(null_z[:, used], axis=1) / sqrt(used.sum())
        p_emp = (1 + int((null_scores >= score).sum())) / (n + 1)
        mu, sd = float(null_scores.mean()), max(float(null_scores.std(ddof=1)), 1e-9)
        p_norm = _normal_sf((score - mu) / sd)
        return Verdict(score, p_emp, p_norm, evidence, [float(x) for x in null_scores], n)


def score_against(
    real: Trajectory | FactSamples,
    sims: Sequence[Trajectory | FactSamples],
    facts: Sequence[str] = DETECTION_FACTS,
    reference: Trajectory | FactSamples | None = None,
) -> Verdict:
    """Score a real window against the rollouts forked at its start (see the module docstring)."""
    return SimulationNull.fit(sims, facts, reference).score(real)


# ---------------------------------------------------------------------------- fact norms
# A fact's z scale is never taken below this on normal windows: a fact that happened to agree
# closely on a handful of calibration windows must not turn small wobbles into huge scores.
MIN_NORM_SCALE = 0.5
MIN_NORM_WINDOWS = 4  # leave-one-out needs 3 left to say what is usual
SHORTFALL_POWER = 4.0  # the norm that combines standardized shortfalls (FactNorms.score)
POOLED = "*"  # all calibration instruments together (an unseen one without profiles to pool by)


@dataclass(slots=True)
class FactNorms:
    """How each fact's real-versus-simulation z behaves on normal windows of one instrument.

    The raw Stouffer score treats every fact's z as if it were N(0, 1) on a normal window. It
    is not: no order model reproduces every fact, so a fact it simulates poorly (for one
    instrument, the spread, say) has a z far below 0 on every window, and its window-to-window
    swings drown the facts the simulation does get right. The norms hold each fact's median z
    and robust spread (1.4826 x the median absolute deviation) over normal windows; a window's
    standardized ``z' = (z - median) / spread`` then says how unusual the fact is *for this
    simulator on this instrument*, and every fact carries the same weight.

    The score counts shortfalls only, so a fact's scale is never below its typical shortfall on
    normal windows: the root mean square of their deviations below the median (the downside
    deviation). A count-like fact (the tails: lasting large orders beyond both the simulation
    and the recent market) is 0 on most normal windows and bursts on a few; its MAD is near 0
    and, alone, would make every ordinary burst read as a manipulation.

    The combined score is the ``power``-norm of the shortfall vector,
    ``(sum_f |min(z'_f, 0)|^p)^(1/p)``: only facts that are less like the simulation than usual
    count (the paradigm's "realism drops"), and a manipulation that leaves its footprint on one
    or two facts is not averaged away by the many it does not touch (a Stouffer sum would divide
    it by sqrt(F)). ``p = 4`` (``SHORTFALL_POWER``) rather than the Euclidean 2: under
    ``p = 2`` ten ordinary shortfalls of 2 (facts the manipulation did not touch) weigh as much
    as one of 6.3 (the fact it did), under ``p = 4`` it takes 81 of them. A calibration records
    the power its threshold was fitted with.

    >>> norms = FactNorms.fit([{"a": -5.0, "b": 0.0}, {"a": -6.0, "b": 1.0}, {"a": -7.0, "b": -1.0}])
    >>> norms.center, norms.scale
    ({'a': -6.0, 'b': 0.0}, {'a': 1.4826, 'b': 1.4826})
    >>> round(norms.score({"a": -6.0, "b": -2.9652}), 3)
    2.0
    >>> round(norms.score({"a": -6.0 - 1.4826, "b": -1.4826}), 3)  # (1 + 1) ** (1 / 4)
    1.189
    """

    center: dict[str, float]
    scale: dict[str, float]
    windows: int = 0
    power: float = SHORTFALL_POWER
    # the instruments whose windows these norms were fitted on (time-of-day norms say which)
    instruments: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, fact_z: Sequence[Mapping[str, float | None]]) -> FactNorms:
        names = sorted({f for z in fact_z for f in z})
        center: dict[str, float] = {}
        scale: dict[str, float] = {}
        for f in names:
            values = np.asarray(
                [z[f] for z in fact_z if z.get(f) is not None and np.isfinite(z[f])],  # type: ignore[arg-type]
                dtype=float,
            )
            if len(values) < 3:
                continue  # too few normal windows to say what is usual for this fact
            med = float(np.median(values))
            center[f] = round(med, 6)
            robust = 1.4826 * float(np.median(np.abs(values - med)))
            downside = float(np.sqrt(np.mean(np.minimum(values - med, 0.0) ** 2)))
            scale[f] = round(max(robust, downside, MIN_NORM_SCALE), 6)
        return cls(center, scale, len(fact_z))

    def standardize(self, fact_z: Mapping[str, float | None]) -> dict[str, float]:
        return {
            f: (z - self.center[f]) / self.scale[f]
            for f, z in fact_z.items()
            if f in self.center and z is not None and np.isfinite(z)
        }

    def score(self, fact_z: Mapping[str, float | None]) -> float | None:
        return shortfall(self.standardize(fact_z), self.power)

    def shift(self, standardized: Mapping[str, float]) -> dict[str, float]:
        """Time-of-day norms (fitted on other windows' standardized z) applied to a window's
        standardized z: its bucket's usual shift taken off, divided by the bucket's spread,
        which is never taken below 1 (``MIN_BUCKET_SCALE``); facts without a norm pass as
        they are."""
        return {
            f: (v - self.center[f]) / max(self.scale[f], MIN_BUCKET_SCALE)
            if f in self.center
            else v
            for f, v in standardized.items()
        }


def mixture_norms(parts: Sequence[tuple[FactNorms, float]]) -> FactNorms | None:
    """Norms of a mixture of instruments: per fact, the weighted mean of their centers and the
    root of the weighted mean of ``scale^2 + (center - mean)^2`` (weights renormalized over the
    instruments that have the fact)."""
    parts = [(n, w) for n, w in parts if w > 0]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][0]
    center: dict[str, float] = {}
    scale: dict[str, float] = {}
    for f in sorted({f for n, _ in parts for f in n.center}):
        have = [(n.center[f], n.scale[f], w) for n, w in parts if f in n.center]
        total = sum(w for _, _, w in have)
        c = sum(w * ci for ci, _, w in have) / total
        var = sum(w * (si**2 + (ci - c) ** 2) for ci, si, w in have) / total
        center[f], scale[f] = round(c, 6), round(sqrt(var), 6)
    return FactNorms(
        center,
        scale,
        sum(n.windows for n, _ in parts),
        parts[0][0].power,
        sorted({i for n, _ in parts for i in n.instruments}),
    )


def adapted_norms(prior: FactNorms, own: Sequence[Mapping[str, float | None]]) -> FactNorms:
    """``prior`` moved towards norms fitted on an instrument's own normal windows, by
    ``coldstart.own_weight``: each fact's center and spread as a two-part mixture (the prior's
    alone with too few own windows; facts the own windows lack keep the prior's)."""
    w = own_weight(len(own))
    if w == 0:
        return prior
    mine = FactNorms.fit(own)
    mine.power = prior.power
    out = mixture_norms([(prior, 1.0 - w), (mine, w)])
    assert out is not None
    for f in prior.center:  # a fact the own windows never had enough of: the prior's
        if f not in mine.center:
            out.center[f], out.scale[f] = prior.center[f], prior.scale[f]
    return out


@dataclass(frozen=True, slots=True)
class ColdVerdict:
    """``Calibration.cold``: a cold window's calibrated score, its threshold, and what stands
    behind them (``explain``: status, weights, window counts)."""

    score: float | None
    threshold: float
    explain: dict[str, Any]
    p_value: float | None = None  # conformal, over the scores behind the threshold


def shortfall(standardized: Mapping[str, float], power: float) -> float | None:
    """The ``power``-norm of the standardized shortfalls (``FactNorms``); None without facts."""
    if not standardized:
        return None
    short = np.array([min(v, 0.0) for v in standardized.values()])
    return float(np.sum(np.abs(short) ** power) ** (1.0 / power))


# A bucket's spread of standardized z is never taken below the instrument's own (1): a few
# windows of another instrument may widen what is usual at the close, never narrow it.
MIN_BUCKET_SCALE = 1.0

# Scenarios: groups of facts that one family of typologies moves, each scored apart (the same
# norms and time-of-day shifts, the shortfall norm of its facts alone) against a threshold of
# its own, fitted on the same normal windows at an equal share of the false-alarm rate. The
# omnibus score sums every fact's shortfall, so a campaign that moves only the sweep facts
# competes with clean windows that stand out on others (a busy afternoon's order sizes and
# arrival rates); alone, the sweep facts rank aggressive campaigns far higher
# (docs/studies/aggressive-manipulation.md, "Scenarios").
SCENARIOS: dict[str, tuple[str, ...]] = {
    # momentum ignition, pump and dump, marking the close
    "aggressive_trading": ("sweep_ratio", *AGGRESSIVE_FACTS),
}
# A scenario threshold is never below this: a standardized shortfall of 1 is what a normal
# window shows on any fact (and a scenario whose facts never fell short on the calibration
# windows must not alert on the first window that does a little).
MIN_SCENARIO_THRESHOLD = 1.0
OMNIBUS = "omnibus"  # every fact's shortfall (``Calibration.components``)


@dataclass(slots=True)
class Scenario:
    """One scenario's facts and its threshold (``Calibration.fit_normal``)."""

    facts: list[str]
    threshold: float


# ---------------------------------------------------------------------------- calibration
@dataclass(slots=True)
class Calibration:
    """Alert threshold for a target false-alarm rate, fitted on the scores of normal windows.

    The threshold is the ``1 - far`` empirical quantile of the normal scores (the smallest score
    that at most a fraction ``far`` of the normal windows exceed). With fewer than ``1 / far``
    normal windows that quantile is the largest one seen, which is said in ``note``.

    The normal scores are kept, so a window's score also gets a p-value that is calibrated on
    real normal windows (a conformal p-value: the share of normal windows scoring at least as
    high), and a severity from how far it clears the threshold in units of the normal scores'
    spread (median absolute deviation): low below 1, medium below 3, high beyond.

    >>> cal = Calibration.fit(list(range(100)), far=0.05, method="test")
    >>> cal.threshold, cal.is_alert(96.0), cal.is_alert(94.0)
    (94.0, True, False)
    >>> round(cal.p_value(97.5), 3), cal.severity(96.0), cal.severity(300.0)
    (0.03, 'low', 'high')
    """

    threshold: float
    far: float
    n_normal: int
    method: str
    note: str = ""
    normal_scores: list[float] = field(default_factory=list)
    model_version: str = ""
    config_version: str = ""
    # per instrument (and ``POOLED``); when present, scores are the norms' calibrated scores
    norms: dict[str, FactNorms] = field(default_factory=dict)
    # time of day: the buckets (``TimeOfDay.as_dict``; empty: a calibration fitted before
    # them, every window scored as midday) and, per instrument (and ``POOLED``) and bucket
    # other than the reference, the norms of the other instruments' standardized z there
    time_of_day: dict[str, int] = field(default_factory=dict)
    tod_norms: dict[str, dict[str, FactNorms]] = field(default_factory=dict)
    # per instrument: its typical window profile (``coldstart.Profile``), what an unseen
    # instrument's first norms are pooled by (empty: a calibration fitted before them)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per scenario (``SCENARIOS``) its facts and threshold (empty: a calibration fitted before
    # scenarios, or without norms: the omnibus score alone decides)
    scenarios: dict[str, Scenario] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        normal_scores: Sequence[float | None],
        *,
        far: float,
        method: str,
        model_version: str = "",
        config_version: str = "",
    ) -> Calibration:
        if not 0 < far < 1:
            raise ValueError("false-alarm rate must be in (0, 1)")
        scores = np.sort(np.asarray([s for s in normal_scores if s is not None], dtype=float))
        if len(scores) == 0:
            raise ValueError("calibration needs at least one normal window score")
        k = int(np.ceil((1 - far) * len(scores))) - 1
        k = min(max(k, 0), len(scores) - 1)
        note = ""
        if len(scores) < 1 / far:
            note = f"only {len(scores)} normal windows: threshold is their maximum"
            k = len(scores) - 1
        return cls(
            float(scores[k]),
            far,
            len(scores),
            method,
            note,
            [round(float(x), 6) for x in scores],
            model_version,
            config_version,
        )

    @classmethod
    def fit_normal(
        cls,
        windows: Sequence[tuple[str, float | None, Mapping[str, float | None]]],
        *,
        far: float,
        method: str,
        model_version: str = "",
        config_version: str = "",
        spans: Sequence[tuple[int, int]] | None = None,
        buckets: Sequence[str] | None = None,
        for_threshold: Sequence[bool] | None = None,
        time_of_day: TimeOfDay | None = None,
        profiles: Sequence[Profile | None] | None = None,
        scenarios: Mapping[str, Sequence[str]] | None = None,
    ) -> Calibration:
        """Fit fact norms per instrument on normal windows ``(instrument, raw score, fact z)``,
        then the threshold on those windows' calibrated scores. Each normal window is scored
        with norms fitted without it (leave one out), so the threshold holds the false-alarm
        rate for windows the norms have not seen rather than flattering itself. With ``spans``
        (each window's ``(start_ns, end_ns)``, in the order of ``windows``) the windows of the
        same instrument that overlap it are left out too: overlapping windows share their
        orders, and norms that saw a neighbour would flatter the window as much as norms that
        saw the window itself. An instrument with fewer than ``MIN_NORM_WINDOWS`` normal
        windows cannot have norms; then the calibration falls back to the raw scores (and says
        so in ``note``).

        Time of day (``buckets``: each window's ``timeofday`` bucket, with the ``time_of_day``
        that assigned them): an instrument's own norms are fitted on its midday windows only;
        every window is standardized by its instrument's norms, and a bucket's norms for an
        instrument are fitted on the standardized z of the *other* instruments' windows in that
        bucket (leave one instrument out: with one day per instrument, the close of one
        calibrates the other's, and no window's own close shifts its own norms).
        ``for_threshold`` (default: every window) says which windows the threshold is fitted
        on; time-of-day material from outside the calibration span (an evaluation's clean
        close windows, say) enters the bucket norms but not the threshold. ``profiles`` (each
        window's ``coldstart.Profile``) give each instrument's typical profile, what an unseen
        instrument's norms are pooled by. Each scenario (``scenarios``: name -> facts, such
        as ``SCENARIOS``; none by default) gets its threshold from the same leave-one-out
        standardized z, its facts' shortfall norm alone; the omnibus threshold and the
        scenarios' each take an equal share of ``far``. With fewer than ``(k + 1) / far``
        normal windows (for k scenarios) the share cannot be told apart from the largest score
        seen, and the calibration has no scenarios (``note`` says so)."""
        n = len(windows)
        if profiles is not None and len(profiles) != n:
            raise ValueError(f"{len(profiles)} profiles for {n} normal windows")
        if spans is not None and len(spans) != n:
            raise ValueError(f"{len(spans)} spans for {n} normal windows")
        if buckets is not None and len(buckets) != n:
            raise ValueError(f"{len(buckets)} buckets for {n} normal windows")
        if for_threshold is not None and len(for_threshold) != n:
            raise ValueError(f"{len(for_threshold)} threshold flags for {n} normal windows")
        bucket = list(buckets) if buckets is not None else [REFERENCE] * n
        counted = list(for_threshold) if for_threshold is not None else [True] * n
        if not any(counted):
            raise ValueError("calibration needs at least one window for its threshold")
        by_inst = _reference_windows(windows, bucket)
        tod_note = ""
        if buckets is not None and by_inst and min(map(len, by_inst.values())) < MIN_NORM_WINDOWS:
            # too few midday windows of an instrument for its own norms: every window is read
            # as midday (no time of day), as a calibration fitted before the buckets was
            bucket = [REFERENCE] * n
            by_inst = _reference_windows(windows, bucket)
            buckets = None
            tod_note = (
                f"fewer than {MIN_NORM_WINDOWS} midday windows of an instrument: no time of day"
            )
        meta = {"method": method, "model_version": model_version}
        if not by_inst or min(len(ks) for ks in by_inst.values()) < MIN_NORM_WINDOWS:
            cal = cls.fit(
                [raw for k, (_, raw, _) in enumerate(windows) if counted[k]], far=far, **meta
            )
            cal.config_version = config_version
            few = f"fewer than {MIN_NORM_WINDOWS} normal windows of an instrument: raw scores"
            cal.note = f"{cal.note}; {few}" if cal.note else few
            return cal
        own = {inst: FactNorms.fit([windows[k][2] for k in ks]) for inst, ks in by_inst.items()}
        standardized: list[dict[str, float]] = []
        power: list[float] = []
        for k, (inst, _, z) in enumerate(windows):
            norms = own[inst]
            if bucket[k] == REFERENCE:  # its own norms without it and the windows it overlaps
                ks = by_inst[inst]
                rest = [
                    j for j in ks if j != k and not _spans_intersect(_at(spans, j), _at(spans, k))
                ]
                if len(rest) < MIN_NORM_WINDOWS - 1:
                    rest = [j for j in ks if j != k]  # too few apart from it: leave one out
                norms = FactNorms.fit([windows[j][2] for j in rest])
            standardized.append(norms.standardize(z))
            power.append(norms.power)
        tod_norms = _fit_tod_norms(windows, bucket, standardized)
        scores: list[float | None] = []
        shifted: list[tuple[dict[str, float], float]] = []  # the counted windows' z and power
        for k, (inst, _, _) in enumerate(windows):
            if not counted[k]:
                continue
            zs = standardized[k]
            bn = tod_norms.get(inst, {}).get(bucket[k])  # fitted without this instrument
            shifted.append((bn.shift(zs) if bn is not None else zs, power[k]))
            scores.append(shortfall(*shifted[-1]))
        fitted = {f for z in own.values() for f in z.center}
        wanted = {
            name: [f for f in facts if f in fitted]  # none: a config without its facts
            for name, facts in (scenarios or {}).items()
        }
        wanted = {name: facts for name, facts in wanted.items() if facts}
        scored = [(zp, x) for zp, x in zip(shifted, scores, strict=True) if x is not None]
        split_note = ""
        if wanted and len(scored) < (len(wanted) + 1) / far:
            # each score's threshold would be the largest normal score seen, so a new normal
            # window would pass one of them about (k + 1) times as often as the target
            split_note = (
                f"{len(scored)} normal windows cannot share the false-alarm rate among "
                f"{len(wanted) + 1} scores: no scenarios"
            )
            wanted = {}
        # the omnibus score and each scenario take an equal share of the false-alarm rate, so
        # the windows alerting on any of them stay within it (Bonferroni)
        share = far / (len(wanted) + 1)
        cal = cls.fit(scores, far=share, config_version=config_version, **meta)
        cal.far = far
        combined = [x for _, x in scored]
        for name, facts in wanted.items():
            own_scores = [
                shortfall({f: v for f, v in z.items() if f in facts}, p) or 0.0
                for (z, p), _ in scored
            ]
            t = max(cls.fit(own_scores, far=share, method=name).threshold, MIN_SCENARIO_THRESHOLD)
            cal.scenarios[name] = Scenario(facts, t)
            combined = [
                max(c, s * cal.threshold / t) if s > t else c
                for c, s in zip(combined, own_scores, strict=True)
            ]
        if cal.scenarios:  # the scores the threshold now applies to (p-values, severities)
            cal.normal_scores = [round(float(x), 6) for x in sorted(combined)]
            shared = f"threshold and {len(wanted)} scenario threshold(s) each at {share:g}"
            cal.note = f"{cal.note}; {shared}" if cal.note else shared
        if split_note:
            cal.note = f"{cal.note}; {split_note}" if cal.note else split_note
        cal.norms = dict(own)
        cal.norms[POOLED] = FactNorms.fit(
            [z for k, (_, _, z) in enumerate(windows) if bucket[k] == REFERENCE]
        )
        if buckets is not None:
            cal.time_of_day = (time_of_day or TimeOfDay()).as_dict()
            cal.tod_norms = tod_norms
        if profiles is not None:  # from the windows its norms were fitted on
            for inst, ks in by_inst.items():
                typical = Profile.typical([p for k in ks if (p := profiles[k]) is not None])
                if typical is not None:
                    cal.profiles[inst] = typical.as_dict()
        if tod_note:
            cal.note = f"{cal.note}; {tod_note}" if cal.note else tod_note
        return cal

    def with_time_of_day(
        self,
        windows: Sequence[tuple[str, Mapping[str, float | None]]],
        buckets: Sequence[str],
        time_of_day: TimeOfDay,
        method: str = "",
    ) -> Calibration:
        """This calibration with time-of-day norms fitted on normal ``windows``
        ``(instrument, fact z)`` in ``buckets``: each standardized by its instrument's norms
        here (the pooled ones for an instrument these norms never saw), then leave one
        instrument out per bucket as ``fit_normal`` does. The instrument norms and the
        threshold are kept: an existing calibration gains its open and close without being
        refitted."""
        if len(buckets) != len(windows):
            raise ValueError(f"{len(buckets)} buckets for {len(windows)} windows")
        if not self.norms:
            raise ValueError("time-of-day norms need a calibration with fact norms")
        standardized = []
        for inst, z in windows:
            _, norms = self._norms(inst)
            standardized.append({} if norms is None else norms.standardize(z))
        triples = [(inst, None, z) for inst, z in windows]
        out = replace(
            self,
            normal_scores=list(self.normal_scores),
            norms=dict(self.norms),
            scenarios=dict(self.scenarios),
        )
        out.time_of_day = time_of_day.as_dict()
        out.tod_norms = _fit_tod_norms(triples, buckets, standardized, also=list(self.norms))
        if method:
            out.method = f"{self.method}; time of day: {method}"
        return out

    def bucket(self, start_ns: int, end_ns: int, session: tuple[int, int] | None) -> str:
        """A window's time-of-day bucket by this calibration's buckets (the default ones for
        a calibration fitted before them, which scores every bucket as midday)."""
        tod = TimeOfDay(**self.time_of_day) if self.time_of_day else TimeOfDay()
        return tod.bucket(start_ns, end_ns, session)

    def calibrated_key(self, instrument: str, feed_depth: int | None = None) -> str | None:
        """The norms a window of ``instrument`` from a feed showing ``feed_depth`` levels is
        read with, or None when it is cold: an instrument this calibration never saw, or a
        feed of it at another depth than the one it was calibrated on (other facts move).
        A calibration without fact norms reads every instrument with its raw scores."""
        if not self.norms:
            return instrument
        if instrument not in self.norms or instrument == POOLED:
            return None
        known = self.profiles.get(instrument, {}).get("feed_depth")
        if feed_depth is not None and known is not None and int(known) != feed_depth:
            return None
        return instrument

    def cold_key(self, instrument: str, feed_depth: int | None = None) -> str:
        """The key a cold window's own normal windows are kept under: ``SYMBOL@DEPTH`` when the
        feed's depth is known (each depth of an instrument adapts apart), else the symbol."""
        return instrument if feed_depth is None else f"{instrument}@{feed_depth}"

    def prior_norms(self, profile: Profile | None) -> tuple[FactNorms | None, dict[str, float]]:
        """An unseen instrument's first norms: the calibrated instruments' norms weighted by
        how alike their profiles are to ``profile`` (``coldstart.likeness``), as a mixture
        (weighted mean of the centers; spread from the weighted second moment, so centers that
        disagree widen it). Without profiles, the pooled norms. Returns the weights too."""
        known = {
            inst: Profile.from_dict(p)
            for inst, p in self.profiles.items()
            if inst in self.norms and inst != POOLED
        }
        if not known:
            return self.norms.get(POOLED), {}
        weights = likeness(profile, known)
        parts = [(self.norms[inst], w) for inst, w in weights.items() if w > 0]
        return mixture_norms(parts), {k: round(w, 6) for k, w in weights.items()}

    def cold(
        self,
        fact_z: Mapping[str, float | None],
        bucket: str,
        profile: Profile | None,
        state: ColdState | None = None,
    ) -> ColdVerdict:
        """The calibrated score, threshold and status of a cold window (``coldstart``): norms
        pooled by likeness and adapted to ``state``'s own normal windows, the bucket's pooled
        time-of-day shift, and a threshold that is a weighted conformal quantile of this
        calibration's normal scores and the own windows' leave-one-out scores, pooled with one
        weight per window."""
        k = 0 if state is None else state.count
        if state is not None and state.profiles:  # its normal windows' profile, not this one's
            profile = state.profile()
        prior, weights = self.prior_norms(profile)
        reference = self.normal_scores or [self.threshold]
        if prior is None:
            return ColdVerdict(
                None,
                self.threshold,
                {"status": POOLED_STATUS, "own_windows": 0, "bucket": bucket},
                None,
            )
        own = state.windows if state is not None else []
        norms = adapted_norms(prior, own)
        w = own_weight(k)
        bn = self.tod_norms.get(POOLED, {}).get(bucket) if bucket != REFERENCE else None
        zs = norms.standardize(fact_z)
        score = shortfall(bn.shift(zs) if bn is not None else zs, norms.power)
        own_scores: list[float] = []
        if w > 0:
            # the own windows' leave-one-out scores depend only on the state and the prior:
            # computed once per new own window, not per window scored
            token = (self.threshold, self.n_normal, tuple(sorted(weights.items())), k)
            cached = state.cache if state is not None else None
            if cached is not None and cached[0] == token:
                own_scores = list(cached[1])
            else:
                for j in range(k):
                    s = adapted_norms(prior, own[:j] + own[j + 1 :]).score(own[j])
                    if s is not None:
                        own_scores.append(s)
                if state is not None:
                    state.cache = (token, tuple(own_scores))
        # pooled one weight per window: the reference's quantile until own windows count
        pool = [*reference, *own_scores]
        t = weighted_quantile_threshold([(pool, 1.0)], self.far) if own_scores else None
        threshold = self.threshold if t is None else t
        # conformal p-value over the same pool as the threshold
        p_value = None if score is None else (1 + sum(x >= score for x in pool)) / (len(pool) + 1)
        status = (
            POOLED_STATUS if w == 0 else ADAPTED if k >= int(np.ceil(1.0 / self.far)) else ADAPTING
        )
        explain = {
            "status": status,
            "bucket": bucket,
            "norms": "likeness" if weights else POOLED,
            "prior": weights,
            "norm_windows": prior.windows + k,
            "own_windows": k,
            "own_weight": round(w, 6),
            "threshold": threshold,
            "threshold_windows": {"reference": self.n_normal, "own": len(own_scores)},
            "bucket_windows": 0 if bn is None else bn.windows,
            "bucket_instruments": [] if bn is None else list(bn.instruments),
            "time_of_day": bool(self.time_of_day),
        }
        return ColdVerdict(score, threshold, explain, p_value)

    def keeps(self, state: ColdState, fact_z: Mapping[str, float | None], bucket: str) -> bool:
        """Whether a cold instrument's window is one of its own normal windows: a midday
        window that, while fewer than ``MIN_OWN_WINDOWS`` are kept, is always kept (the prior
        may misread every window of an unlike instrument: judged by it, none would ever be
        kept), and after that one that does not clear the threshold against norms fitted on
        the kept windows alone (an outlier for the instrument itself, such as a manipulation,
        is not learnt as normal)."""
        if bucket != REFERENCE:
            return False
        if state.count < MIN_OWN_WINDOWS:
            return True
        own = FactNorms.fit(state.windows)
        own.power = next(iter(self.norms.values())).power if self.norms else own.power
        return not self.is_alert(own.score(fact_z))

    def _norms(self, instrument: str) -> tuple[str, FactNorms | None]:
        if instrument in self.norms:
            return instrument, self.norms[instrument]
        return POOLED, self.norms.get(POOLED)

    def _tod(self, instrument: str, bucket: str) -> FactNorms | None:
        if bucket == REFERENCE:
            return None
        # a calibrated instrument reads only the norms fitted without it; the pooled ones
        # (which hold its own windows) serve instruments the calibration never saw
        key = instrument if instrument in self.norms else POOLED
        return self.tod_norms.get(key, {}).get(bucket)

    def score(
        self,
        raw: float | None,
        fact_z: Mapping[str, float | None] | None,
        instrument: str,
        bucket: str = MIDDAY,
    ) -> float | None:
        """The score this calibration's threshold applies to: the norms' calibrated score of a
        window's fact z (``FactNorms.score``), after its time-of-day bucket's shift, or the raw
        score when it has no norms. With scenarios: the omnibus score, raised for a window a
        scenario flags (its score above the scenario's threshold) to that score rescaled by
        the two thresholds' ratio, so the window clears the threshold exactly when the omnibus
        score or a scenario clears its own, and windows no scenario flags keep the omnibus
        ranking."""
        if not self.norms:
            return raw
        parts = self.components(fact_z, instrument, bucket)
        score = parts.pop(OMNIBUS)
        if score is None:
            return None
        for name, s in parts.items():
            t = self.scenarios[name].threshold
            if s is not None and s > t:  # flagged: at least its score on the omnibus scale
                score = max(score, s * self.threshold / t if self.threshold > 0 else s)
        return score

    def _shortfall(
        self,
        fact_z: Mapping[str, float | None] | None,
        instrument: str,
        bucket: str,
        facts: Sequence[str] | None = None,
    ) -> float | None:
        _, norms = self._norms(instrument)
        if norms is None or fact_z is None:
            return None
        if facts is not None:
            fact_z = {f: z for f, z in fact_z.items() if f in facts}
        zs = norms.standardize(fact_z)
        bn = self._tod(instrument, bucket)
        return shortfall(bn.shift(zs) if bn is not None else zs, norms.power)

    def components(
        self, fact_z: Mapping[str, float | None] | None, instrument: str, bucket: str = MIDDAY
    ) -> dict[str, float | None]:
        """A calibrated window's omnibus score (every fact's shortfall) and each scenario's
        (its facts' alone), each on its own scale: what ``score`` combines."""
        out = {OMNIBUS: self._shortfall(fact_z, instrument, bucket)}
        for name, sc in self.scenarios.items():
            out[name] = self._shortfall(fact_z, instrument, bucket, sc.facts)
        return out

    def explain(
        self,
        instrument: str,
        bucket: str = MIDDAY,
        fact_z: Mapping[str, float | None] | None = None,
    ) -> dict[str, object]:
        """What stands behind a window's calibrated score: its bucket, whose norms (the
        instrument's, or the pooled ones for an unseen instrument) and on how many windows,
        and the time-of-day norms of its bucket: how many windows of which instruments. With
        the window's ``fact_z`` and scenarios, what the score combines (``scenarios``: the
        omnibus score and each scenario's, each with its own threshold)."""
        if not self.norms:
            return {"bucket": bucket, "norms": None}
        key, norms = self._norms(instrument)
        bn = self._tod(instrument, bucket)
        out: dict[str, object] = {
            "status": CALIBRATED if key == instrument else POOLED_STATUS,
            "bucket": bucket,
            "norms": key,
            "norm_windows": 0 if norms is None else norms.windows,
            "bucket_windows": 0 if bn is None else bn.windows,
            "bucket_instruments": [] if bn is None else list(bn.instruments),
            "time_of_day": bool(self.time_of_day),
        }
        if fact_z is not None and self.scenarios:
            out["scenarios"] = {
                name: {
                    "score": s,
                    "threshold": self.threshold
                    if name == OMNIBUS
                    else self.scenarios[name].threshold,
                }
                for name, s in self.components(fact_z, instrument, bucket).items()
            }
        return out

    def is_alert(self, score: float | None, threshold: float | None = None) -> bool:
        """Whether ``score`` clears the threshold (``threshold``: a cold window's own)."""
        return score is not None and score > (self.threshold if threshold is None else threshold)

    def p_value(self, score: float | None) -> float | None:
        if score is None or not self.normal_scores:
            return None
        scores = np.asarray(self.normal_scores)
        return (1 + int((scores >= score).sum())) / (len(scores) + 1)

    def severity(self, score: float | None, threshold: float | None = None) -> str:
        """``none`` for a window that does not alert, else ``low`` / ``medium`` / ``high``."""
        if not self.is_alert(score, threshold):
            return "none"
        assert score is not None
        scores = np.asarray(self.normal_scores or [self.threshold])
        mad = float(np.median(np.abs(scores - np.median(scores)))) * 1.4826
        scale = max(mad, 1e-9)
        excess = (score - (self.threshold if threshold is None else threshold)) / scale
        return "low" if excess < 1 else "medium" if excess < 3 else "high"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        data = json.loads(Path(path).read_text())
        # a calibration written before the power was recorded was fitted with the Euclidean norm
        data["norms"] = {
            k: FactNorms(**{"power": 2.0, **v}) for k, v in data.get("norms", {}).items()
        }
        # one written before time of day has none: every window is scored as midday
        data["tod_norms"] = {
            inst: {b: FactNorms(**v) for b, v in by_bucket.items()}
            for inst, by_bucket in data.get("tod_norms", {}).items()
        }
        # one written before scenarios has none: the omnibus score alone decides
        data["scenarios"] = {k: Scenario(**v) for k, v in data.get("scenarios", {}).items()}
        return cls(**data)


# ---------------------------------------------------------------------------- baselines
def historical_diff(
    current: FactSamples, history: Sequence[FactSamples], facts: Sequence[str] = DETECTION_FACTS
) -> float | None:
    """Diff(market now, market past): 1 - mean OVL between this window and earlier windows."""
    if not history:
        return None
    overlaps = []
    for fact in facts:
        ovl = _overlap(fact, current[fact], _pool([h[fact] for h in history]))
        if ovl is not None:
            overlaps.append(ovl)
    return 1.0 - float(np.mean(overlaps)) if overlaps else None


def _mean_spread(samples: FactSamples) -> float | None:
    values, weights = samples["spread_time_weighted"]
    if len(values) == 0:
        return None
    return float(np.average(values, weights=weights))


def spread_zscore(current: FactSamples, history: Sequence[FactSamples]) -> float | None:
    """|mean spread now - mean of earlier windows' mean spreads| / their standard deviation."""
    now = _mean_spread(current)
    past = [m for m in (_mean_spread(h) for h in history) if m is not None]
    if now is None or len(past) < 2:
        return None
    sd = max(float(np.std(past, ddof=1)), 0.25)  # a quarter tick: never divide by ~0
    return abs(now - float(np.mean(past))) / sd


def _fit_tod_norms(
    windows: Sequence[tuple[str, float | None, Mapping[str, float | None]]],
    bucket: Sequence[str],
    standardized: Sequence[Mapping[str, float]],
    also: Sequence[str] = (),
) -> dict[str, dict[str, FactNorms]]:
    """Per instrument (those of ``windows`` and ``also``, and ``POOLED``) and bucket other
    than the reference: norms of the standardized z of the bucket's windows of every *other*
    instrument (all of them for ``POOLED``), where at least ``MIN_NORM_WINDOWS`` exist."""
    instruments = sorted({inst for inst, _, _ in windows} | set(also) - {POOLED})
    out: dict[str, dict[str, FactNorms]] = {}
    for b in sorted({x for x in bucket if x != REFERENCE}):
        members = [k for k in range(len(windows)) if bucket[k] == b]
        for target in [*instruments, POOLED]:
            ks = [k for k in members if windows[k][0] != target]
            if len(ks) < MIN_NORM_WINDOWS:
                continue
            norms = FactNorms.fit([standardized[k] for k in ks])
            norms.instruments = sorted({windows[k][0] for k in ks})
            out.setdefault(target, {})[b] = norms
    return out
