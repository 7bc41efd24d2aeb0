"""The manipulation benchmark: clean and manipulated variants of real days, four detectors.

For every evaluation window (by default the held-out last 90 minutes of each shared day, a
window starting every 5 minutes), the rollouts are forked once from the real book at the
window's start: a manipulation that starts inside the window cannot change what came before
it, so the clean window and every manipulated variant of it are scored against the same
simulated futures (exactly what a live detector would have done: the same book, context, seed
and day's open mid as the stream worker and the replay, so a clean window scores as there).
Variants: each typology of ``simulator.manipulation`` at each intensity, the campaign running
from one minute after the window's start to one minute before its end.

Detectors, all on the same windows:

- ``simulation``: the MarS detector (``surveillance.detection.detector``), calibrated: its fact norms and
  threshold are fitted on normal *calibration windows* of the same days before the evaluation
  span (by default one starting every 5 minutes from 10:00 to 14:30: 50 overlapping windows
  per instrument), and every evaluation window is scored with them (``calibrate``). Nothing
  about the evaluation windows goes into the calibration;
- ``simulation_uncalibrated``: the same verdicts' raw Stouffer score, for comparison;
- ``historical_diff``: Diff(market now, market past) against the instrument's earlier windows;
- ``spread_zscore``: the spread z-score rule.

Forks can be kept in a ``surveillance.studies.simcache.SimCache`` (``evaluate --sim-cache DIR``): a rerun
with other facts, intensities or calibration settings then rescores the same simulated futures
in a minute or two instead of running the order model again.

Reported per typology and intensity: ROC AUC (clean windows negative, manipulated positive;
ties count half) and the true-positive rate at a 5% false-positive rate (the threshold is the
smallest that at most 5% of clean windows exceed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.book import OrderBook
from simulator.engine import Engine
from simulator.feeds import load_feed, venue_day_start
from simulator.lobster import load_lobster
from simulator.manipulation import (
    INTENSITIES,
    Campaign,
    Injection,
    Typology,
    inject,
    typical_level_gap,
    typical_touch_qty,
)
from simulator.normalized import iter_events, lobster_to_frame
from simulator.replay import FeedReplayer
from simulator.rollout import OrderGenerator
from simulator.trajectory import trajectory_from_events
from simulator.types import BookEvent, Instrument
from simulator.units import NS_PER_MIN, session_bounds
from surveillance.detection.coldstart import ColdState, Profile
from surveillance.detection.detector import Calibration
from surveillance.detection.metrics import window_facts
from surveillance.detection.pipeline import ClosedWindow, first_two_sided_mid
from surveillance.detection.scoring import (
    DetectionConfig,
    Simulation,
    reference_facts,
    score_window,
    simulate,
)
from surveillance.detection.timeofday import REFERENCE, TimeOfDay
from surveillance.studies import simcache
from surveillance.studies.simcache import SimCache

DETECTORS = ("simulation", "simulation_uncalibrated", "historical_diff", "spread_zscore")
# a component of the calibrated score in ``VariantScore.scores`` (``Calibration.components``:
# the omnibus score and each scenario's, on their own scales; a diagnostic, never a detector)
COMPONENT_PREFIX = "component:"


@dataclass(frozen=True, slots=True)
class EvaluationConfig:
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    start_ns: int = (14 * 60 + 30) * NS_PER_MIN  # held out from the order model's training
    end_ns: int = 16 * 60 * NS_PER_MIN
    stride_ns: int = 5 * NS_PER_MIN
    # more evaluation windows, starting in each ``(start, end)`` at ``stride_ns`` (the open's,
    # say): scored like the span's, and their clean windows outside the midday bucket are
    # time-of-day material as the close's are
    extra_spans: tuple[tuple[int, int], ...] = ()
    # where the historical baseline's earlier windows may start; None: the instrument's
    # session open (09:30 for the LOBSTER days, midnight for a venue trading around the clock)
    session_open_ns: int | None = None
    typologies: tuple[Typology, ...] = tuple(Typology)
    # named levels (``simulator.manipulation.INTENSITIES``) or numeric scales ("0.25": a
    # quarter of moderate); ``intensity_scale`` reads either
    intensities: tuple[str, ...] = ("low", "moderate", "high")
    # salts the campaigns' seeds: tuning runs on the calibration hours use their own campaigns
    # (0 keeps the seeds every earlier benchmark figure was measured with)
    campaign_seed: int = 0
    # score only the windows whose forks a ``SimCache`` already holds (a rescoring run on a
    # cache still being filled; the windows left out are reported, never forked)
    cached_only: bool = False
    margin_ns: int = NS_PER_MIN  # campaigns start/stop this far inside the window
    target_fpr: float = 0.05
    # normal windows the simulation detector's fact norms and threshold are fitted on: before
    # the evaluation span, one starting every 5 minutes, so they overlap (``calibrate`` leaves
    # out the windows that overlap the one scored together); the stride's measurements are in
    # docs/decisions/calibration-windows.md
    calibration_start_ns: int = 10 * 60 * NS_PER_MIN
    calibration_end_ns: int = (14 * 60 + 30) * NS_PER_MIN
    calibration_stride_ns: int = 5 * NS_PER_MIN
    # the open, midday and close buckets the calibration learns fact norms for
    time_of_day: TimeOfDay = field(default_factory=TimeOfDay)

    def __post_init__(self) -> None:
        for label in self.intensities:
            intensity_scale(label)  # a bad label fails here, not after the forks

    def window_starts(self) -> list[int]:
        window = self.detection.window_ns
        starts = set(range(self.start_ns, self.end_ns - window + 1, self.stride_ns))
        for lo, hi in self.extra_spans:
            starts.update(range(lo, hi, self.stride_ns))
        return sorted(starts)

    def calibration_starts(self) -> list[int]:
        window = self.detection.window_ns
        end = min(self.calibration_end_ns, self.start_ns)
        return list(range(self.calibration_start_ns, end - window + 1, self.calibration_stride_ns))


class IntensityError(ValueError):
    """An intensity that is neither a named level nor a positive number."""


def intensity_scale(label: str) -> float:
    """The campaign intensity of a label: a named level (``INTENSITIES``: low 0.5, moderate 1,
    high 2) or a positive number, the scale of the moderate campaign's sizes and rates.

    >>> intensity_scale("moderate"), intensity_scale("0.25")
    (1.0, 0.25)
    """
    if label in INTENSITIES:
        return INTENSITIES[label]
    try:
        value = float(label)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        names = ", ".join(INTENSITIES)
        raise IntensityError(f"intensity {label!r} is not one of {names} nor a positive number")
    return value


@dataclass(slots=True)
class VariantScore:
    instrument: str
    window_start_ns: int
    variant: str  # "clean" or a typology
    intensity: str | None
    scores: dict[str, float | None]  # detector -> score
    diverged: list[str]
    injected_events: int = 0
    fact_z: dict[str, float | None] = field(default_factory=dict)  # the simulation's per fact
    bucket: str = REFERENCE  # the window's time of day (``surveillance.detection.timeofday``)
    end_ns: int | None = None  # where the window ends (a window cut at the close: there)
    feed_depth: int | None = None  # levels per side the day's feed shows
    profile: dict[str, Any] | None = None  # the window's ``coldstart.Profile``
    # how a cold window (no norms for its instrument) was calibrated: status, own windows,
    # threshold (``Calibration.cold``); None for a calibrated instrument's window
    cold: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "instrument": self.instrument,
            "window_start_ns": self.window_start_ns,
            "variant": self.variant,
            "intensity": self.intensity,
            "scores": self.scores,
            "diverged": self.diverged,
            "injected_events": self.injected_events,
            "fact_z": self.fact_z,
            "end_ns": self.end_ns,
            "feed_depth": self.feed_depth,
            "profile": self.profile,
            "cold": self.cold,
        }


# The injectors' order size unit on the LOBSTER days: NASDAQ's round lot, which the benchmark's
# figures were measured with (``Instrument.lot_size`` there is one share, the odd-lot minimum).
NASDAQ_ROUND_LOT = 100


def campaign_units(meta: Instrument) -> tuple[int, int]:
    """The tick and lot a campaign on ``meta`` trades in: the instrument's, except NASDAQ's
    round lot (``NASDAQ_ROUND_LOT``) for its stocks."""
    lot = NASDAQ_ROUND_LOT if meta.venue == "NASDAQ" else meta.lot_size
    return meta.tick_size, lot


class _Day:
    """One instrument-day as events, with books and real facts at any window boundary.

    A LOBSTER day, or (``fmt``) any venue file ``simulator.feeds`` reads: its epoch clock is
    turned into times of day (ns after the venue's midnight), the clock the window grid, the
    calibration span and the order model's time features count in."""

    def __init__(self, path: str | Path, fmt: str = "lobster") -> None:
        if fmt == "lobster":
            day = load_lobster(path)
            self.instrument = day.symbol
            self.meta = day.instrument
            self.frame = lobster_to_frame(day)
        else:
            feed = load_feed(path, fmt)
            if feed.frame.empty:
                raise ValueError(f"{path}: no events")
            self.instrument = str(feed.frame["instrument"].iloc[0])
            self.meta = feed.instrument or Instrument(self.instrument)
            start = venue_day_start(feed.frame, feed.instrument)
            self.frame = feed.frame.assign(ts_ns=feed.frame["ts_ns"] - start)
        self.ts = self.frame["ts_ns"].to_numpy()
        self.events: list[BookEvent] = list(iter_events(self.frame))
        self._books: dict[int, OrderBook] = {}
        self._facts: dict[tuple[int, int], dict] = {}
        self._open_mid: float | None = None
        self._book_scale: tuple[float, int | None] | None = None

    @property
    def open_mid(self) -> float:
        """The day's first two-sided mid: what the stream worker and the replay condition the
        order model's mid-move feature on (``surveillance.detection.pipeline``), so the benchmark's forks,
        and the calibrations fitted on them, are the deployed detector's."""
        if self._open_mid is None:
            self._open_mid = first_two_sided_mid(self.events, self.instrument) or 0.0
        return self._open_mid

    def index(self, t: int) -> int:
        """Index of the first event at or after ``t``."""
        return int(np.searchsorted(self.ts, t, side="left"))

    def books_at(self, times: Sequence[int]) -> None:
        """Fork the book at each time (before the first event at or after it), in one pass."""
        replayer = FeedReplayer(OrderBook(self.instrument))
        pos = 0
        for t in sorted(set(times)):
            stop = self.index(t)
            for e in self.events[pos:stop]:
                replayer.apply_event(e)
            pos = max(pos, stop)
            self._books[t] = replayer.book.fork()

    def book(self, t: int) -> OrderBook:
        return self._books[t]

    def slice(self, start: int, end: int) -> list[BookEvent]:
        return self.events[self.index(start) : self.index(end)]

    def frame_slice(self, start: int, end: int) -> pd.DataFrame:
        return self.frame.iloc[self.index(start) : self.index(end)].reset_index(drop=True)

    def inject(self, start: int, end: int, campaign: Campaign) -> Injection:
        """``campaign`` injected into the window ``[start, end)`` from the day's book there,
        sized by the day's typical touch and, behind a depth-limited feed, level gap."""
        if self._book_scale is None:
            shallow = self.meta.feed_depth is not None  # the gap places hidden levels only
            self._book_scale = (
                typical_touch_qty(self.frame),
                typical_level_gap(self.frame, campaign_units(self.meta)[0]) if shallow else None,
            )
        touch, gap = self._book_scale
        return inject(
            self.frame_slice(start, end),
            campaign,
            touch_qty=touch,
            book=self.book(start),
            feed_depth=self.meta.feed_depth,
            level_gap=gap,
        )

    def facts(self, start: int, end: int, tick: int) -> dict:
        key = (start, end)
        if key not in self._facts:
            real = trajectory_from_events(
                self.book(start), self.slice(start, end), start, end, tick
            )
            self._facts[key] = window_facts(real)
        return self._facts[key]


Progress = Callable[[str], None]


def evaluate_day(
    path: str | Path,
    generator: OrderGenerator,
    config: EvaluationConfig,
    *,
    progress: Progress | None = None,
    calibration: bool = False,
    cache: SimCache | None = None,
    generator_version: str = "",
    fmt: str = "lobster",
) -> list[VariantScore]:
    """Score one day's evaluation windows, clean and manipulated (or, with ``calibration``,
    its calibration windows, clean only). The ``simulation`` score is the raw Stouffer score;
    ``calibrate`` turns it into the calibrated one. With a ``cache`` (and the generator's
    ``generator_version``), forks are read from it where present and stored where not.
    ``fmt``: the file's format (``simulator.feeds``); the tick, price scale, lot and session
    are the instrument's."""
    if cache is not None and not generator_version:
        raise ValueError("a simulation cache needs the generator's version")
    if config.cached_only and cache is None:
        raise ValueError("scoring only cached windows needs a simulation cache")
    day = _Day(path, fmt)
    det = replace(config.detection, tick_size=day.meta.tick_size, price_scale=day.meta.price_scale)
    window_ns = det.window_ns
    session_open = (
        day.meta.session_ns()[0] if config.session_open_ns is None else config.session_open_ns
    )
    tick, lot = campaign_units(day.meta)
    # the session the windows are read against: a window never runs past the close, and its
    # time-of-day bucket counts from the open and to the close (none for a 24-hour venue)
    # (times of day: a session across midnight, CME's, opened the evening before)
    bounds = session_bounds(
        day.meta.session_open, day.meta.session_close, day.meta.timezone, epoch=False
    )
    engine = Engine(generator)
    starts = config.calibration_starts() if calibration else config.window_starts()
    earlier_of = {
        s: [
            s - k * window_ns
            for k in range(det.baseline_windows, 0, -1)
            if s - k * window_ns >= session_open
        ]
        for s in starts
    }
    needed = set(starts) | {s - window_ns for s in starts}
    needed |= {t for ts in earlier_of.values() for t in ts}
    day.books_at(sorted(t for t in needed if t >= 0))
    out: list[VariantScore] = []
    for s in starts:
        if progress is not None:
            progress(
                f"{day.instrument} window at {s // NS_PER_MIN // 60:02d}:{s // NS_PER_MIN % 60:02d}"
            )
        session = bounds(s)
        end = s + window_ns if session is None else min(s + window_ns, session[1])
        opening = day.book(s)
        window = ClosedWindow(
            day.instrument,
            s,
            end,
            opening,
            tuple(day.slice(s, end)),
            "event",
            history=tuple(day.slice(s - window_ns, s)),
            history_book=day.book(s - window_ns),
            open_mid=day.open_mid,
            feed_depth=day.meta.feed_depth,
            earlier_facts=tuple(day.facts(t, t + window_ns, det.tick_size) for t in earlier_of[s]),
            session=session,
        )
        cache_key = simcache.window_key(window, det, generator_version)
        bucket = config.time_of_day.bucket(s, end, session)
        cached = cache.load(cache_key) if cache is not None else None
        if cached is None and config.cached_only:
            if progress is not None:
                progress(f"{day.instrument} window at {_clock(s)}: not in the cache, left out")
            continue
        if cached is not None:
            simulation = Simulation.of(
                cached, det, reference_facts(window, det), day.meta.feed_depth
            )
        else:
            (simulation,) = simulate([window], engine, det)
            if cache is not None:
                cache.save(cache_key, simulation.sims)

        def score(
            events: list[BookEvent],
            variant: str,
            intensity: str | None,
            injected: int = 0,
            window: ClosedWindow = window,
            simulation: Simulation = simulation,
            bucket: str = bucket,
            end: int = end,
        ) -> VariantScore:
            scored = score_window(
                replace(window, events=tuple(events)), simulation, det, None, with_evidence=False
            )
            facts = scored.detail["facts"]
            return VariantScore(
                day.instrument,
                window.start_ns,
                variant,
                intensity,
                {
                    "simulation": scored.score,
                    "simulation_uncalibrated": scored.score,
                    **scored.baselines,
                },
                list(scored.diverged),
                injected,
                {f: e["z"] for f, e in facts.items()},
                bucket,
                end,
                day.meta.feed_depth,
                scored.detail.get("profile"),
            )

        out.append(score(day.slice(s, end), "clean", None))
        if calibration:
            continue
        for typology in config.typologies:
            for name in config.intensities:
                campaign = Campaign(
                    typology,
                    s + config.margin_ns,
                    end - config.margin_ns,
                    intensity_scale(name),
                    seed=_campaign_seed(
                        config.campaign_seed, det.seed, day.instrument, s, typology, name
                    ),
                    tick=tick,
                    lot=lot,
                )
                injection = day.inject(s, end, campaign)
                events = list(iter_events(injection.frame))
                out.append(score(events, typology.value, name, injection.stats.injected_events))
    return out


def _clock(t_ns: int) -> str:
    return f"{t_ns // NS_PER_MIN // 60:02d}:{t_ns // NS_PER_MIN % 60:02d}"


def _campaign_seed(
    salt: int, seed: int, instrument: str, start_ns: int, typology: Typology, intensity: str
) -> int:
    text = f"{seed}|{instrument}|{start_ns}|{typology}|{intensity}"
    return zlib.crc32((text if salt == 0 else f"{salt}|{text}").encode())


def evaluate_task(
    path: str | Path,
    sampler: Callable[[], OrderGenerator],
    config: EvaluationConfig,
    calibration: bool,
    cache_dir: str | None = None,
    generator_version: str = "",
    fmt: str = "lobster",
) -> list[VariantScore]:
    """``evaluate_day`` in a worker process (``sampler``, a picklable factory such as
    ``surveillance.cli.wiring.SamplerSpec``, builds the generator there; progress goes to
    stderr), so days and phases can run on several cores."""
    import sys

    def say(message: str) -> None:
        print(f"  {message}{' (calibration)' if calibration else ''}", file=sys.stderr, flush=True)

    return evaluate_day(
        path,
        sampler(),
        config,
        progress=say,
        calibration=calibration,
        cache=SimCache(cache_dir) if cache_dir else None,
        generator_version=generator_version,
        fmt=fmt,
    )


def calibrate(
    normal: Sequence[VariantScore],
    results: Sequence[VariantScore],
    *,
    far: float,
    method: str,
    model_version: str = "",
    config_version: str = "",
    window_ns: int | None = None,
    onto: Calibration | None = None,
    time_of_day: TimeOfDay | None = None,
    own_windows: int | None = None,
    scenarios: Mapping[str, Sequence[str]] | None = None,
) -> Calibration:
    """Fit the simulation detector's calibration (fact norms, time-of-day norms and
    threshold) on ``normal`` windows, and rescore ``results`` with it in place (``simulation``
    becomes the calibrated score; ``simulation_uncalibrated`` keeps the raw one). With
    ``window_ns`` the threshold's leave-out also leaves out the normal windows that overlap
    the one scored.

    Time of day: the clean windows of ``results`` outside the reference bucket (the close of
    the held-out span) are time-of-day material too, leave one instrument out: they shift
    the other instruments' norms for their bucket, never their own instrument's, and they do
    not enter the threshold (fitted on ``normal`` only). With ``onto`` (an existing
    calibration) its instrument norms and threshold are kept and only the time-of-day norms
    are fitted, on ``normal`` and that material. Without ``time_of_day`` and ``onto`` every
    window is read as midday (the calibration as before time of day; what each measured:
    docs/decisions/time-of-day-calibration.md). ``scenarios`` (such as
    ``detector.SCENARIOS``; none by default) are fitted with it."""
    if time_of_day is None and onto is None:
        cal = Calibration.fit_normal(
            [(r.instrument, r.scores["simulation_uncalibrated"], r.fact_z) for r in normal],
            far=far,
            method=method,
            model_version=model_version,
            config_version=config_version,
            spans=None
            if window_ns is None
            else [(r.window_start_ns, r.window_start_ns + window_ns) for r in normal],
            profiles=[_profile(r) for r in normal],
            scenarios=scenarios,
        )
        rescore(results, cal, normal, own_windows)
        return cal
    extra = [r for r in results if r.variant == "clean" and r.bucket != REFERENCE]
    material = [*normal, *extra]
    windows = [(r.instrument, r.scores["simulation_uncalibrated"], r.fact_z) for r in material]
    buckets = [r.bucket for r in material]
    if onto is not None:
        cal = onto.with_time_of_day(
            [(inst, z) for inst, _, z in windows], buckets, time_of_day or TimeOfDay(), method
        )
    else:
        cal = Calibration.fit_normal(
            windows,
            far=far,
            method=method,
            model_version=model_version,
            config_version=config_version,
            spans=None
            if window_ns is None
            else [(r.window_start_ns, r.window_start_ns + window_ns) for r in material],
            buckets=buckets,
            for_threshold=[True] * len(normal) + [False] * len(extra),
            time_of_day=time_of_day,
            # an instrument's profile from its calibration windows, as its norms
            profiles=[_profile(r) for r in normal] + [None] * len(extra),
            scenarios=scenarios,
        )
    rescore(results, cal, normal, own_windows)
    return cal


def _profile(r: VariantScore) -> Profile | None:
    return None if r.profile is None else Profile.from_dict(r.profile)


def rescore(
    results: Sequence[VariantScore],
    cal: Calibration,
    normal: Sequence[VariantScore] = (),
    own_windows: int | None = None,
) -> None:
    """``simulation`` of every result becomes ``cal``'s calibrated score, in its bucket.

    A window of an instrument (or feed depth) ``cal`` has no norms for is read cold
    (``Calibration.cold``), with the instrument's own normal windows that ended before it:
    its clean windows of ``normal`` (the calibration span), taken in time order as a stream
    worker would (each read with the ones before it, kept as ``Calibration.keeps`` says), at most
    ``own_windows`` of them (0: the first window's view, pooled by likeness alone). Its score
    is then put on ``cal``'s threshold scale (times ``cal.threshold`` over its own
    threshold), so an alert is ``cal.is_alert`` as for every other window, and ``cold``
    records the threshold and status it was read with."""
    states = _cold_states(cal, normal, own_windows)
    for r in results:
        raw = r.scores["simulation_uncalibrated"]
        for key in [k for k in r.scores if k.startswith(COMPONENT_PREFIX)]:
            del r.scores[key]  # another calibration's
        if cal.calibrated_key(r.instrument, r.feed_depth) is not None:
            r.scores["simulation"] = cal.score(raw, r.fact_z, r.instrument, r.bucket)
            if cal.scenarios:
                for name, s in cal.components(r.fact_z, r.instrument, r.bucket).items():
                    r.scores[COMPONENT_PREFIX + name] = s
            r.cold = None
            continue
        history = states.get(r.instrument, [])
        before = [st for end, st in history if end <= r.window_start_ns]
        state = before[-1] if before else None
        verdict = cal.cold(r.fact_z, r.bucket, _profile(r), state)
        r.scores["simulation"] = (
            verdict.score
            if verdict.score is None or verdict.threshold <= 0
            else verdict.score * cal.threshold / verdict.threshold
        )
        r.cold = {**verdict.explain, "raw_cold_score": verdict.score}


def _cold_states(
    cal: Calibration, normal: Sequence[VariantScore], own_windows: int | None
) -> dict[str, list[tuple[int, ColdState]]]:
    """Per cold instrument: after each of its normal windows (by end time), the own-window
    state a stream worker would hold then (``Calibration.keeps`` decides which are kept, as in
    ``ColdStarts.apply``)."""
    out: dict[str, list[tuple[int, ColdState]]] = {}
    by_inst: dict[str, list[VariantScore]] = {}
    for r in normal:
        if r.variant == "clean" and cal.calibrated_key(r.instrument, r.feed_depth) is None:
            by_inst.setdefault(r.instrument, []).append(r)
    for inst, rows in by_inst.items():
        state = ColdState(inst)
        seq: list[tuple[int, ColdState]] = []
        for r in sorted(rows, key=lambda r: r.window_start_ns):
            if own_windows is not None and state.count >= own_windows:
                break
            if cal.keeps(state, r.fact_z, r.bucket):
                state = ColdState(inst, [*state.windows], [*state.profiles])
                state.observe(r.fact_z, _profile(r))
            end = r.end_ns if r.end_ns is not None else r.window_start_ns
            seq.append((end, state))
        out[inst] = seq
    return out


def cold_summary(results: Sequence[VariantScore], cal: Calibration) -> dict[str, Any]:
    """Per instrument read cold (``rescore``): how its windows were calibrated (status, own
    windows, the threshold and the windows behind it), its clean windows' false-alarm rate,
    and the calibrated AUC and alert rate of each typology and intensity within it."""
    out: dict[str, Any] = {}
    for inst in sorted({r.instrument for r in results if r.cold is not None}):
        group = [r for r in results if r.instrument == inst and r.cold is not None]
        clean = [r.scores["simulation"] for r in group if r.variant == "clean"]
        first = next(r.cold for r in group if r.cold is not None)
        cell: dict[str, Any] = {
            "feed_depth": group[0].feed_depth,
            "status": sorted({r.cold["status"] for r in group if r.cold is not None}),
            "own_windows": first.get("own_windows"),
            "threshold": first.get("threshold"),
            "threshold_windows": first.get("threshold_windows"),
            "prior": first.get("prior"),
            "clean_windows": len(clean),
            "false_alarm_rate": float(np.mean([cal.is_alert(x) for x in clean])) if clean else None,
        }
        for v, i in sorted({(r.variant, r.intensity) for r in group if r.variant != "clean"}):
            pos = [r.scores["simulation"] for r in group if r.variant == v and r.intensity == i]
            cell[f"{v}/{i}"] = {
                "auc": roc_auc(clean, pos),  # type: ignore[arg-type]
                "alert_rate": float(np.mean([cal.is_alert(x) for x in pos])),
            }
        out[inst] = cell
    return out


def alert_rates(results: Sequence[VariantScore], cal: Calibration) -> dict[str, Any]:
    """Per instrument and time-of-day bucket: the clean windows, the share of them ``cal``
    alerts on (its false alarms) and the share of each typology's variants it alerts on."""
    out: dict[str, Any] = {}
    for inst, bucket in sorted({(r.instrument, r.bucket) for r in results}):
        group = [r for r in results if r.instrument == inst and r.bucket == bucket]
        clean = [r for r in group if r.variant == "clean"]
        cell: dict[str, Any] = {
            "clean_windows": len(clean),
            "false_alarms": sum(cal.is_alert(r.scores["simulation"]) for r in clean),
            "explain": cal.explain(inst, bucket),
        }
        for v, i in sorted({(r.variant, r.intensity) for r in group if r.variant != "clean"}):
            hits = [
                cal.is_alert(r.scores["simulation"])
                for r in group
                if r.variant == v and r.intensity == i
            ]
            cell[f"{v}/{i}"] = float(np.mean(hits))
        out.setdefault(inst, {})[bucket] = cell
    return out


# ---------------------------------------------------------------------------- metrics
def roc_auc(negatives: Sequence[float], positives: Sequence[float]) -> float | None:
    """Probability that a positive outscores a negative (ties count half).

    >>> roc_auc([0, 1, 2], [3, 4]), roc_auc([1, 2], [1, 2])
    (1.0, 0.5)
    """
    neg = np.asarray([x for x in negatives if x is not None], dtype=float)
    pos = np.asarray([x for x in positives if x is not None], dtype=float)
    if len(neg) == 0 or len(pos) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def tpr_at_fpr(
    negatives: Sequence[float], positives: Sequence[float], fpr: float = 0.05
) -> float | None:
    """True-positive rate at the smallest threshold that at most ``fpr`` of negatives exceed.

    >>> tpr_at_fpr(list(range(100)), [50, 95, 99, 120], 0.05)  # threshold 94
    0.75
    """
    neg = np.sort(np.asarray([x for x in negatives if x is not None], dtype=float))
    pos = np.asarray([x for x in positives if x is not None], dtype=float)
    if len(neg) == 0 or len(pos) == 0:
        return None
    allowed = int(np.floor(fpr * len(neg)))  # negatives that may exceed the threshold
    threshold = neg[len(neg) - 1 - allowed]
    return float((pos > threshold).mean())


def _table(results: Sequence[VariantScore], fpr: float) -> dict[str, Any]:
    """typology -> intensity -> detector -> AUC, TPR at ``fpr`` and counts: the clean windows
    of ``results`` against each group of its manipulated ones."""
    clean = [r for r in results if r.variant == "clean"]
    table: dict[str, dict[str, dict[str, dict[str, float | None]]]] = {}
    for r in results:
        if r.variant != "clean":
            table.setdefault(r.variant, {}).setdefault(str(r.intensity), {})
    for typology, by_intensity in table.items():
        for intensity, cell in by_intensity.items():
            manip = [r for r in results if r.variant == typology and r.intensity == intensity]
            for d in DETECTORS:
                neg = [r.scores[d] for r in clean]
                pos = [r.scores[d] for r in manip]
                cell[d] = {
                    "auc": roc_auc(neg, pos),  # type: ignore[arg-type]
                    "tpr_at_fpr": tpr_at_fpr(neg, pos, fpr),  # type: ignore[arg-type]
                    "n_clean": len([x for x in neg if x is not None]),
                    "n_manipulated": len([x for x in pos if x is not None]),
                }
    return table


def summarize(results: Sequence[VariantScore], fpr: float = 0.05) -> dict[str, Any]:
    """AUC and TPR at ``fpr`` per typology, intensity and detector, plus overall means, and the
    AUCs within each instrument (``by_instrument``)."""
    table = _table(results, fpr)
    cells: dict[str, list[float]] = {d: [] for d in DETECTORS}
    for by_intensity in table.values():
        for cell in by_intensity.values():
            for d in DETECTORS:
                if cell[d]["auc"] is not None:
                    cells[d].append(cell[d]["auc"])
    # the same AUCs within each instrument (its clean windows against its manipulated ones): a
    # pooled AUC can hide one instrument whose normal windows the simulation misreads
    by_instrument = {
        instrument: {
            typology: {
                intensity: {d: c["auc"] for d, c in cell.items()}
                for intensity, cell in by_intensity.items()
            }
            for typology, by_intensity in _table(
                [r for r in results if r.instrument == instrument], fpr
            ).items()
        }
        for instrument in sorted({r.instrument for r in results})
    }
    return {
        "fpr": fpr,
        "windows": sum(r.variant == "clean" for r in results),
        "by_typology": table,
        "by_instrument": by_instrument,
        "mean_auc": {d: (float(np.mean(v)) if v else None) for d, v in cells.items()},
    }


def calibrated_rates(
    normal: Sequence[VariantScore], results: Sequence[VariantScore], far: float
) -> dict[str, dict[str, Any]]:
    """Every detector as deployed: its threshold fitted on the ``normal`` (calibration)
    windows at ``far`` (the smallest that at most ``far`` of them exceed, as ``tpr_at_fpr``),
    then its false-alarm rate on the clean evaluation windows and its true-positive rate per
    typology and intensity. Unlike the table's TPR, whose threshold is read off the evaluated
    clean windows themselves, nothing about the evaluated windows sets it. The calibrated
    simulation detector is left out: its threshold is its ``Calibration``'s (``calibrate``)."""
    out: dict[str, dict[str, Any]] = {}
    for d in DETECTORS[1:]:
        neg = np.sort([r.scores[d] for r in normal if r.scores.get(d) is not None])
        if len(neg) == 0:
            continue
        threshold = float(neg[len(neg) - 1 - int(np.floor(far * len(neg)))])

        def rate(group: list[VariantScore], d: str = d, threshold: float = threshold) -> float:
            scored = [r.scores[d] for r in group if r.scores.get(d) is not None]
            return float(np.mean([x > threshold for x in scored])) if scored else float("nan")

        out[d] = {
            "threshold": threshold,
            "false_alarm_rate": rate([r for r in results if r.variant == "clean"]),
            "tpr": {
                f"{v}/{i}": rate([r for r in results if r.variant == v and r.intensity == i])
                for v, i in sorted(
                    {(r.variant, r.intensity) for r in results if r.variant != "clean"}
                )
            },
        }
    return out


# ---------------------------------------------------------------------------- curves
# What "detectable" means on a curve: ranked above the clean windows this often (AUC), and
# alerted at the calibrated threshold at least this often (TPR).
DETECTABLE_AUC = 0.9
DETECTABLE_TPR = 0.5


def detection_curves(
    results: Sequence[VariantScore], calibration: Calibration
) -> dict[str, dict[str, Any]]:
    """Detection-limit curves of the calibrated simulation detector: per instrument and
    typology, at every intensity (by scale), the AUC of its manipulated windows against the
    instrument's clean ones and the share of them that alert at ``calibration``'s threshold
    (the TPR at the calibrated false-alarm rate); with the instrument's false-alarm rate on
    its clean windows, and the smallest intensity whose AUC reaches ``DETECTABLE_AUC`` and
    whose TPR reaches ``DETECTABLE_TPR`` (None: none measured did)."""
    out: dict[str, dict[str, Any]] = {}
    for instrument in sorted({r.instrument for r in results}):
        mine = [r for r in results if r.instrument == instrument]
        clean = [r.scores["simulation"] for r in mine if r.variant == "clean"]
        parts = sorted({k for r in mine for k in r.scores if k.startswith(COMPONENT_PREFIX)})
        scored_clean = [x for x in clean if x is not None]
        curves: dict[str, Any] = {}
        for typology in sorted({r.variant for r in mine if r.variant != "clean"}):
            points = []
            labels = {r.intensity for r in mine if r.variant == typology}
            for label in sorted(labels, key=lambda x: intensity_scale(str(x))):
                pos = [
                    r.scores["simulation"]
                    for r in mine
                    if r.variant == typology and r.intensity == label
                ]
                scored = [x for x in pos if x is not None]
                points.append(
                    {
                        "intensity": label,
                        "scale": intensity_scale(str(label)),
                        "auc": roc_auc(clean, pos),  # type: ignore[arg-type]
                        "tpr": float(np.mean([calibration.is_alert(x) for x in scored]))
                        if scored
                        else None,
                        "n": len(scored),
                        # each component of the score alone (the omnibus score, a scenario's)
                        # ranking these windows against the instrument's clean ones
                        "component_auc": {
                            key.removeprefix(COMPONENT_PREFIX): roc_auc(
                                [r.scores.get(key) for r in mine if r.variant == "clean"],  # type: ignore[misc]
                                [
                                    r.scores.get(key)
                                    for r in mine
                                    if r.variant == typology and r.intensity == label
                                ],  # type: ignore[misc]
                            )
                            for key in parts
                        },
                    }
                )
            curves[typology] = {
                "points": points,
                "min_scale_auc": _first_scale(points, "auc", DETECTABLE_AUC),
                "min_scale_tpr": _first_scale(points, "tpr", DETECTABLE_TPR),
            }
        out[instrument] = {
            "clean_windows": len(scored_clean),
            "false_alarm_rate": float(np.mean([calibration.is_alert(x) for x in scored_clean]))
            if scored_clean
            else None,
            "typologies": curves,
        }
    return out


def _first_scale(points: Sequence[dict[str, Any]], key: str, level: float) -> float | None:
    """The smallest scale from which on every measured point reaches ``level`` (a curve that
    dips again above it is not yet detectable there)."""
    found = None
    for point in reversed(points):  # from the highest intensity down
        if point[key] is None or point[key] < level:
            break
        found = point["scale"]
    return found
