"""Cold start: deciding on an instrument (or a feed of it) the calibration never saw.

A calibration holds fact norms per instrument (``detector.FactNorms``): how each fact's
real-versus-simulation z behaves on that instrument's normal windows. An instrument it never
saw has none, and norms borrowed from other instruments are off by whatever sets the two
apart (issue 32: an unseen NASDAQ stock read with pooled norms alerted on two of three clean
windows). Three pieces answer it:

- **Likeness.** A calibration records each instrument's ``Profile``: tick-to-price ratio,
  activity (real orders per minute), spread in ticks, and how many levels its feed shows.
  An unseen instrument's first norms are the calibrated instruments' norms weighted by how
  alike the first three are (``prior_norms``; the depth decides whether a calibration
  applies, not the weights), a mixture: the centers' weighted mean, the spread widened by how
  far the centers disagree.
- **Adaptation.** The unseen instrument's midday windows are kept (``ColdState``) as
  ``Calibration.keeps`` says: the first three whatever they score, then those that are not
  outliers against its own kept windows. Its norms move from the prior to its own windows as
  they come (``adapted_norms``: own weight ``k / (k + PRIOR_WINDOWS)``), and its threshold is
  the conformal quantile of the calibration's normal scores and its own windows' scores pooled
  (one weight per window), each own window scored with norms fitted without it.
- **Status.** Every decision says how it was calibrated (``calibrated``, ``pooled``,
  ``adapting``, ``adapted``) and how many windows stand behind its norms and threshold.

A feed of a calibrated instrument at another depth (level 1 of a stock calibrated on its
level-10 feed) reads other facts, so it is cold too: its key is ``SYMBOL@DEPTH``.

The state is kept where decisions are made in order (the replay, the stream worker's decision
loop, the benchmark); this module is pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from simulator.trajectory import Trajectory
from surveillance.detection.timeofday import REFERENCE as REFERENCE_BUCKET

# Bandwidth of the likeness kernel, in log10 units of each profile feature: instruments a
# factor of 10 apart on one feature weigh exp(-1/2) of an identical one.
LIKENESS_BANDWIDTH = 1.0
# The prior norms count as this many windows against the instrument's own.
PRIOR_WINDOWS = 4
# Own windows need at least this many for own norms (as ``detector.MIN_NORM_WINDOWS`` - 1).
MIN_OWN_WINDOWS = 3
# The normal windows a cold instrument keeps (its newest): bounds the state and the refits.
KEEP_WINDOWS = 200

CALIBRATED = "calibrated"
POOLED_STATUS = "pooled"
ADAPTING = "adapting"
ADAPTED = "adapted"


@dataclass(frozen=True, slots=True)
class Profile:
    """What makes instruments alike for their calibration (see the module docstring)."""

    tick_to_price: float
    orders_per_min: float
    spread_ticks: float
    feed_depth: int | None = None  # levels per side the feed shows; None: all (order by order)

    def vector(self) -> np.ndarray:
        values = (self.tick_to_price, self.orders_per_min, self.spread_ticks)
        return np.log10(np.maximum(np.asarray(values, dtype=float), 1e-12))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            float(data["tick_to_price"]),
            float(data["orders_per_min"]),
            float(data["spread_ticks"]),
            None if data.get("feed_depth") is None else int(data["feed_depth"]),
        )

    @classmethod
    def typical(cls, profiles: Sequence[Profile]) -> Profile | None:
        """The geometric mean of each feature (ratios and rates), the most common depth."""
        if not profiles:
            return None
        v = np.mean([p.vector() for p in profiles], axis=0)
        depths = [p.feed_depth for p in profiles]
        depth = max(depths, key=lambda d: (depths.count(d), -1 if d is None else d))
        return cls(*(round(float(10**x), 9) for x in v), feed_depth=depth)


def profile_of(real: Trajectory, feed_depth: int | None = None) -> Profile | None:
    """A window's profile from its real trajectory: the median two-sided touch, the orders per
    minute, the median spread in ticks. None for a window without a two-sided book."""
    bid, ask = np.asarray(real.best_bid), np.asarray(real.best_ask)
    ok = real.two_sided() & (bid > 0) & (ask > bid)
    if not ok.any():
        return None
    mid = float(np.median((bid[ok] + ask[ok]) / 2.0))
    spread = float(np.median((ask[ok] - bid[ok]) / real.tick_size))
    minutes = max((real.end_ns - real.start_ns) / 60e9, 1e-9)
    return Profile(
        tick_to_price=round(real.tick_size / mid, 9),
        orders_per_min=round(len(real.ts_ns) / minutes, 3),
        spread_ticks=round(spread, 3),
        feed_depth=feed_depth,
    )


def likeness(profile: Profile | None, known: Mapping[str, Profile]) -> dict[str, float]:
    """Normalized weights of the ``known`` instruments for an instrument of ``profile``: a
    Gaussian kernel on the distance of their log profiles. Without a profile (or none known),
    every instrument weighs the same."""
    if not known:
        return {}
    if profile is None:
        return {k: 1.0 / len(known) for k in known}
    v = profile.vector()
    raw = {
        k: math.exp(-0.5 * float(np.sum((p.vector() - v) ** 2)) / LIKENESS_BANDWIDTH**2)
        for k, p in known.items()
    }
    total = sum(raw.values())
    if total <= 0.0:  # nothing is alike within many bandwidths: every instrument the same
        return {k: 1.0 / len(known) for k in known}
    return {k: w / total for k, w in raw.items()}


@dataclass(slots=True)
class ColdState:
    """An unseen instrument's (or feed's) normal windows so far, oldest first: each window's
    fact z (midday windows decided normal) and its profile."""

    key: str
    windows: list[dict[str, float]] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    # the own windows' leave-one-out scores for one prior (``Calibration.cold``), cleared by
    # every new window
    cache: tuple[Any, tuple[float, ...]] | None = field(default=None, compare=False)

    def observe(self, fact_z: Mapping[str, float | None], profile: Profile | None) -> None:
        self.windows.append(
            {f: float(z) for f, z in fact_z.items() if z is not None and np.isfinite(z)}
        )
        if profile is not None:
            self.profiles.append(profile)
        del self.windows[:-KEEP_WINDOWS]
        del self.profiles[:-KEEP_WINDOWS]
        self.cache = None

    @property
    def count(self) -> int:
        return len(self.windows)

    def profile(self) -> Profile | None:
        return Profile.typical(self.profiles)


def own_weight(k: int) -> float:
    """The weight of an instrument's own ``k`` normal windows against the prior norms."""
    return 0.0 if k < MIN_OWN_WINDOWS else k / (k + PRIOR_WINDOWS)


def weighted_quantile_threshold(
    groups: Sequence[tuple[Sequence[float], float]], far: float
) -> float | None:
    """The smallest score that at most a weighted share ``far`` of the scores exceed; ``groups``
    are ``(scores, total weight)``, each group's weight spread evenly over its scores (a
    conformal quantile over a mixture of reference and own windows)."""
    values: list[float] = []
    weights: list[float] = []
    for scores, w in groups:
        scores = [s for s in scores if s is not None and np.isfinite(s)]
        if not scores or w <= 0:
            continue
        values += scores
        weights += [w / len(scores)] * len(scores)
    if not values:
        return None
    order = np.argsort(values)
    v = np.asarray(values)[order]
    w = np.asarray(weights)[order]
    w = w / w.sum()
    above = 1.0 - np.cumsum(w)  # weighted share strictly above each sorted score
    ok = np.nonzero(above <= far + 1e-12)[0]
    return float(v[ok[0]]) if len(ok) else float(v[-1])


class ColdStarts:
    """The own normal windows of every cold instrument (or feed) a decision loop has decided,
    and the step that reads a cold window's score with them: where decisions are made in
    order (the replay, the stream worker's decision loop), each scored window goes through
    ``apply`` once, in window order per instrument."""

    def __init__(self) -> None:
        self.states: dict[str, ColdState] = {}

    def apply(
        self, score: Any, instrument: str, feed_depth: int | None, cal: Any, *, keep: bool = True
    ) -> Any:
        """``score`` (a ``WindowScore``) read with the instrument's own windows so far when the
        calibration ``cal`` has no norms for it, then kept as one of them when
        ``cal.keeps`` says so; any other score passes unchanged. With ``keep=False`` the
        window is not kept yet: ``keep`` takes the verdict's record once it is written (the
        stream worker, so its state never holds a window its store does not)."""
        if cal is None or score.score is None or not cal.norms:
            return score
        if cal.calibrated_key(instrument, feed_depth) is not None:
            return score
        detail = dict(score.detail)
        facts = detail.get("facts") or {}
        fact_z = {f: e.get("z") for f, e in facts.items()}
        raw_profile = detail.get("profile")
        profile = None if raw_profile is None else Profile.from_dict(raw_profile)
        bucket = detail.get("bucket", REFERENCE_BUCKET)
        key = cal.cold_key(instrument, feed_depth)
        state = self.states.setdefault(key, ColdState(key))
        verdict = cal.cold(fact_z, bucket, profile, state)
        alert = cal.is_alert(verdict.score, verdict.threshold)
        kept = cal.keeps(state, fact_z, bucket)
        detail["calibration"] = {**verdict.explain, "key": key, "kept": kept}
        if kept:  # what ``restore`` rebuilds the state from (the store keeps this record)
            detail["calibration"]["own"] = {"fact_z": fact_z, "profile": raw_profile}
        out = replace(
            score,
            score=verdict.score,
            alert=alert,
            threshold=verdict.threshold,
            severity=cal.severity(verdict.score, verdict.threshold),
            p_value=verdict.p_value,
            detail=detail,
        )
        if kept and keep:
            state.observe(fact_z, profile)
        return out

    def keep(self, calibration: Mapping[str, Any] | None) -> None:
        """Keep the window of a verdict read with ``apply(keep=False)``, from its
        ``detail.calibration`` record (nothing when the window was not to be kept)."""
        if calibration and calibration.get("key"):
            _observe(
                self.states.setdefault(calibration["key"], ColdState(calibration["key"])),
                calibration,
            )

    def forget(self, instrument: str) -> None:
        """Drop every state of ``instrument`` (each of its feed depths): another worker
        decides its windows now, so a later ``restore`` must read them from the store."""
        for key in [k for k in self.states if k == instrument or k.startswith(f"{instrument}@")]:
            del self.states[key]

    def restore(self, key: str, calibrations: Sequence[Mapping[str, Any] | None]) -> ColdState:
        """The state of ``key`` rebuilt from the ``detail.calibration`` records of its
        decisions so far, in window order (a worker taking over an instrument reads them from
        the store): the windows they kept, as ``apply`` kept them."""
        state = ColdState(key)
        for c in calibrations:
            if c and c.get("key") == key:
                _observe(state, c)
        self.states[key] = state
        return state


def _observe(state: ColdState, calibration: Mapping[str, Any]) -> None:
    """``state`` observes the window a ``detail.calibration`` record says was kept."""
    own = calibration.get("own")
    if not calibration.get("kept") or not own:
        return
    raw = own.get("profile")
    state.observe(own.get("fact_z") or {}, None if raw is None else Profile.from_dict(raw))
