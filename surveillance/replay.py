"""Regulator replay: historical files through the same pipeline as the live service.

Each file is read (LOBSTER vendor zip or CSV pair, Databento MBO, a Bitstamp log, or normalized
events with their instrument metadata; ``simulator.feeds``), turned into book
events, and fed through ``WindowedDetector`` with a ``SimulationScorer``: the same windows, the
same rollouts (seeded by seed, instrument and window), the same scores a live worker produces.
One record per window goes to ``scores.jsonl``; ``surveillance.report`` renders the records.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.feeds import VenueFeed, load_feeds
from simulator.lobster import FeedError, FileName, load_lobster
from simulator.normalized import BookSnapshot, iter_events, lobster_snapshots, lobster_to_frame
from simulator.sessions import (
    clock_on,
    grid_origin,
    session_predicate,
    session_span,
    trade_date,
    trade_date_bounds,
)
from simulator.types import Instrument
from simulator.units import NS_PER_DAY, NS_PER_S, iso_time
from surveillance.detection.coldstart import ColdStarts
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import WindowDecision, WindowedDetector, WindowScore
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.timeofday import MIDDAY

FORMATS = ("lobster", "normalized", "databento", "bitstamp")
EXCHANGE_TZ = "America/New_York"


class ReplayError(ValueError):
    """The replay cannot run as asked (bad format, no events, ...)."""


@dataclass(slots=True)
class ReplayInput:
    """One file's events, ready for the detector."""

    path: Path
    instrument: str
    frame: pd.DataFrame
    origin_ns: int  # where the window grid starts (the session open)
    session_date: dt.date | None  # for ts_ns counted from midnight (LOBSTER)
    malformed_rows: int = 0
    # the feed's book snapshots (``simulator.normalized.BookSnapshot``, in frame order): they
    # repair a book an integrity fault left suspect, and check a trusted one
    snapshots: list[BookSnapshot] = field(default_factory=list)
    meta: Instrument | None = None  # tick, price scale, session (None: LOBSTER's defaults)
    day_start_ns: int = 0  # where the feed's (trade) date starts, in its epoch clock

    @property
    def calendar(self) -> Instrument:
        """Whose sessions and trade dates the input's times follow (UTC days without
        metadata)."""
        if self.meta is not None:
            return self.meta
        return Instrument("", timezone="UTC", session_open="00:00", session_close="24:00")

    def clock(self, ns_after_midnight: int | None, *, end: bool = False) -> int:
        """A time of day on the input's date (a case's ``--from``/``--to``) in the feed's
        clock; None: where that date starts (or, with ``end``, ends). For an epoch feed the
        date is a trade date (CME: trade date D, 17:00 is 17:00 on D-1)."""
        if self.day_start_ns == 0 or self.session_date is None:
            if ns_after_midnight is None:
                return NS_PER_DAY + 1 if end else 0
            return self.day_start_ns + ns_after_midnight
        if ns_after_midnight is None:
            return trade_date_bounds(self.calendar, self.session_date)[1 if end else 0]
        return clock_on(self.calendar, self.session_date, ns_after_midnight)


# What a directory of days holds, per format (a LOBSTER day: its zip, or its message file with
# the orderbook file beside it)
_DAY_FILES = {
    "lobster": ("*.zip", "*_message_*.csv"),
    "normalized": ("*.parquet", "*.jsonl"),
    "databento": ("*.dbn", "*.dbn.zst"),
    "bitstamp": ("*.log", "*.log.bz2", "*.log.gz"),
}


def input_files(paths: Iterable[str | Path], fmt: str) -> list[Path]:
    """The files to replay: each path as given, a directory as the days it holds (by name)."""
    if fmt not in FORMATS:
        raise ReplayError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        days = sorted({f for pattern in _DAY_FILES[fmt] for f in p.glob(pattern)})
        if not days:
            raise ReplayError(f"{p}: no {fmt} files in this directory")
        out.extend(days)
    return out


def read_inputs(
    path: str | Path,
    fmt: str,
    *,
    session_date: dt.date | None = None,
    instrument: str | None = None,
) -> list[ReplayInput]:
    """Read one file: one input per instrument it holds (a DBN file may hold several), or only
    ``instrument``'s."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ReplayError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "lobster":
        item = read_input(path, fmt, session_date=session_date)
        if instrument is not None and instrument != item.instrument:
            raise ReplayError(f"{path}: no instrument {instrument!r} (it holds {item.instrument})")
        return [item]
    if not path.exists():
        raise FeedError(f"no such file: {path}")
    feeds = load_feeds(path, fmt, instrument=instrument)
    return [_venue_input(path, feed, session_date) for feed in feeds]


def read_input(path: str | Path, fmt: str, *, session_date: dt.date | None = None) -> ReplayInput:
    """Read one file of one instrument. LOBSTER: the instrument and date come from the file
    name, the window grid starts at the file's start time; normalized: from the events and
    ``session_date``."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ReplayError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise FeedError(f"no such file: {path}")
    if fmt == "lobster":
        try:
            day = load_lobster(path)
        except FeedError as exc:
            if "no orderbook file" not in str(exc):
                raise
            day = load_lobster(path, with_orderbook=False)
        frame = lobster_to_frame(day)
        name: FileName = day.name
        origin = name.start_ms * 1_000_000
        return ReplayInput(
            path,
            name.symbol,
            frame,
            origin,
            dt.date.fromisoformat(name.date),
            day.malformed_rows,
            lobster_snapshots(day, frame),
            meta=day.instrument,
        )
    items = read_inputs(path, fmt, session_date=session_date)
    if len(items) != 1:
        names = ", ".join(i.instrument for i in items)
        raise ReplayError(f"{path}: {len(items)} instruments ({names}); choose one")
    return items[0]


def _venue_input(path: Path, feed: VenueFeed, session_date: dt.date | None) -> ReplayInput:
    frame, bad, meta = feed.frame, feed.malformed, feed.instrument
    if frame.empty:
        raise ReplayError(f"{path}: no events")
    instruments = frame["instrument"].unique().tolist()
    if len(instruments) != 1:
        raise ReplayError(f"{path}: one instrument per file, found {len(instruments)}")
    first = int(frame["ts_ns"].iloc[0])
    origin = first // (60 * NS_PER_S) * (60 * NS_PER_S)
    item = ReplayInput(
        path, str(instruments[0]), frame, origin, session_date, bad, feed.snapshots, meta=meta
    )
    if first >= NS_PER_DAY:
        # epoch times: the (trade) date the feed starts on (its first venue event: a seed
        # may be stamped earlier), in the venue's zone and calendar; the window grid starts
        # at that event's session open (``simulator.sessions.grid_origin``, as in the worker)
        live = frame["ts_ns"][~frame["synthetic"].to_numpy(bool)].tolist() or [first]
        # the trade date of the session the feed covers: its first event in the session (a
        # feed may start in the halt before it, which belongs to the day that closed)
        inside = session_predicate(item.calendar, epoch=True)
        begun = next((t for t in live if inside(t)), live[0])
        day = trade_date(item.calendar, begun)
        item.day_start_ns = trade_date_bounds(item.calendar, day)[0]
        if meta is not None:
            item.origin_ns = grid_origin(meta, first)
        if session_date is None:
            item.session_date = day  # the day a dated case (--from/--to with dates) matches
    return item


def session_of(item: ReplayInput) -> Callable[[int], bool] | None:
    """Whether a time of this input is in its venue's continuous session (None: no session
    known, every time counts)."""
    meta = item.meta
    if meta is None:
        return None
    epoch = item.day_start_ns > 0 or int(item.frame["ts_ns"].iloc[0]) >= NS_PER_DAY
    return session_predicate(meta, epoch=epoch)


def session_bounds_of(item: ReplayInput) -> Callable[[int], tuple[int, int] | None] | None:
    """The session (open, close) a time of this input falls in (None: no session known)."""
    meta = item.meta
    if meta is None:
        return None
    epoch = item.day_start_ns > 0 or int(item.frame["ts_ns"].iloc[0]) >= NS_PER_DAY
    return session_span(meta, epoch=epoch)


def instrument_of(inputs: list[ReplayInput]) -> Instrument | None:
    """The one instrument metadata the inputs share (their tick and price scale go into the
    detection config); None when none carries metadata. Mixed ticks cannot share a scorer."""
    metas = {(i.meta.tick_size, i.meta.price_scale): i.meta for i in inputs if i.meta}
    if len(metas) > 1:
        raise ReplayError(
            "the inputs have different ticks or price scales: replay them one venue (or one "
            "instrument, --instrument) at a time"
        )
    return next(iter(metas.values()), None)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def decision_record(
    decision: WindowDecision, *, session_date: dt.date | None, seed: int
) -> dict[str, Any]:
    """One ``scores.jsonl`` line (also the report's input)."""
    detail = dict(decision.verdict.detail)
    evidence = detail.pop("evidence", None)
    orders = detail.pop("orders", None)
    facts = detail.pop("facts", {})
    record = {
        "instrument": decision.instrument,
        "window_start": iso_time(decision.start_ns, session_date, EXCHANGE_TZ),
        "window_end": iso_time(decision.end_ns, session_date, EXCHANGE_TZ),
        "window_start_ns": decision.start_ns,
        "window_end_ns": decision.end_ns,
        "score": decision.verdict.score,
        "p_value": decision.verdict.p_value,
        "p_value_normal": detail.get("p_value_sim_normal"),
        "alert": decision.verdict.alert,
        "threshold": decision.verdict.threshold,
        "severity": decision.verdict.severity,
        "facts": facts,
        "diverged": list(decision.verdict.diverged),
        "baselines": dict(decision.verdict.baselines),
        "rollouts": detail.get("rollouts"),
        "seed": seed,
        "window_seed": detail.get("seed"),
        "model_version": decision.model_version,
        "n_events": decision.n_events,
        "closed_by": decision.closed_by,
        "detail": detail,
        "evidence": evidence,
        "orders": orders,
    }
    return _clean(record)


@dataclass(frozen=True, slots=True)
class Case:
    """A regulator's case: ``[start, end)`` in feed time (ns after midnight), on a date range
    when the dates are given (multi-day inputs), else on every input's day."""

    start_ns: int
    end_ns: int
    start_date: dt.date | None = None
    end_date: dt.date | None = None

    def __post_init__(self) -> None:
        if (self.start_date is None) != (self.end_date is None):
            raise ReplayError("a case gives a date at both ends or at neither")
        start = (self.start_date or dt.date.min, self.start_ns)
        if (self.end_date or dt.date.min, self.end_ns) <= start:
            raise ReplayError("a case must end after it starts")

    def span(self, day: dt.date | None) -> tuple[int | None, int | None] | None:
        """The case's part of a day, as times of day (None at an end: the day's own start or
        end, which for an overnight session is not midnight); None when the day lies outside
        the case."""
        if self.start_date is None or self.end_date is None:
            return self.start_ns, self.end_ns
        if day is None:
            raise ReplayError("a case with dates needs inputs with dates (--date)")
        if not self.start_date <= day <= self.end_date:
            return None
        start = self.start_ns if day == self.start_date else None
        return start, self.end_ns if day == self.end_date else None


@dataclass(slots=True)
class ReplayResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    malformed_rows: int = 0
    events: int = 0
    files: list[str] = field(default_factory=list)


Progress = Callable[[int, str], None]  # (events done, what is happening)


def replay(
    inputs: list[ReplayInput],
    scorer: SimulationScorer,
    *,
    progress: Progress | None = None,
    self_calibrate_far: float | None = None,
    case: Case | tuple[int, int] | None = None,
) -> ReplayResult:
    """Run every input through the detector; one record per window, in time order per file.

    With ``self_calibrate_far`` (no calibration available) the threshold is fitted afterwards
    on the replay's own windows, treating them as mostly normal; records say so. ``case``
    (a ``Case``, or ``[from, to)`` in feed time) scores only the windows that overlap it, and
    no input whose day lies outside it; the window grid, the books and each window's context
    are the full replay's, so its records are the full replay's records of those windows.
    """
    result = ReplayResult()
    config = scorer.config
    # an instrument the calibration has no norms for adapts to its own windows in order
    # (a case replay adapts only on the windows of the case it scores)
    cold = ColdStarts()
    if isinstance(case, tuple):
        case = Case(*case)
    for item in inputs:
        part = case.span(item.session_date) if case is not None else None
        if case is not None and part is None:
            continue  # a day outside the case
        span = None
        if part is not None:  # into the feed's clock
            span = (item.clock(part[0]), item.clock(part[1], end=True))
        wanted = None
        if span is not None:
            lo, hi = span
            wanted = lambda w, lo=lo, hi=hi: w.start_ns < hi and w.end_ns > lo  # noqa: E731
        detector = WindowedDetector(
            scorer,
            window_ns=config.window_ns,
            origin_ns=item.origin_ns,
            tick_size=config.tick_size,
            baseline_windows=config.baseline_windows,
            wanted=wanted,
            check_seq=True,
            in_session=session_of(item),
            session_bounds=session_bounds_of(item),
            feed_depth=None if item.meta is None else item.meta.feed_depth,
        )
        result.files.append(str(item.path))
        result.malformed_rows += item.malformed_rows

        def emit(decisions: list[WindowDecision], item: ReplayInput = item) -> None:
            depth = None if item.meta is None else item.meta.feed_depth
            for d in decisions:
                d = replace(
                    d,
                    verdict=cold.apply(
                        d.verdict, d.instrument, depth, getattr(scorer, "calibration", None)
                    ),
                )
                result.records.append(
                    decision_record(d, session_date=item.session_date, seed=scorer.config.seed)
                )

        snaps = iter(item.snapshots)
        due = next(snaps, None)
        for k, event in enumerate(_events(item)):
            while due is not None and due.position <= k:
                detector.pipeline(item.instrument).snapshot(due.bids, due.asks, due.depth)
                due = next(snaps, None)
            emit(detector.on_event(event))
            result.events += 1
            if progress is not None and result.events % 2_000 == 0:
                progress(2_000, item.instrument)
            if span is not None and event.ts_ns >= span[1] + config.window_ns:
                break  # the last window the case needs has closed
        emit(detector.flush())
        if progress is not None:
            progress(result.events % 2_000, item.instrument)
    scored = [r for r in result.records if r["score"] is not None]
    if self_calibrate_far is not None and scored:
        cal = Calibration.fit_normal(
            [(r["instrument"], r["score"], _fact_z(r)) for r in scored],
            far=self_calibrate_far,
            method="self: this replay's own windows",
            model_version=scorer.model_version,
            config_version=scorer.config_version,
            spans=[(r["window_start_ns"], r["window_end_ns"]) for r in scored],
        )  # no time-of-day norms (as evaluate without --time-of-day): every bucket as midday
        for r in result.records:
            if r["score"] is not None:
                bucket = r["detail"].get("bucket", MIDDAY)
                fact_z = _fact_z(r)
                r["score"] = cal.score(r["score"], fact_z, r["instrument"], bucket)
                r["detail"]["calibration"] = cal.explain(r["instrument"], bucket, fact_z)
            r["alert"] = cal.is_alert(r["score"])
            r["threshold"] = cal.threshold
            r["severity"] = cal.severity(r["score"])
            r["p_value"] = cal.p_value(r["score"])
            r["detail"]["calibrated"] = "self"
    return result


def _fact_z(record: dict[str, Any]) -> dict[str, float | None]:
    return {f: e.get("z") for f, e in record["facts"].items()}


def _events(item: ReplayInput) -> Iterator:
    return iter_events(item.frame.assign(instrument=item.instrument))


def write_scores(path: str | Path, records: list[dict[str, Any]]) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n")


def read_scores(path: str | Path) -> list[dict[str, Any]]:
    """The records ``write_scores`` wrote."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def rescore(
    records: list[dict[str, Any]],
    cal: Calibration,
    session: Callable[[int], tuple[int, int] | None] | None,
    source: str = "",
) -> list[dict[str, Any]]:
    """A replay's records scored again with another calibration, without forking: every
    scored window keeps its facts' z against its rollouts (the raw score's inputs), and gets
    the calibrated score, threshold, alert, severity and p-value of ``cal`` in its time-of-day
    bucket (read from its window and ``session``, the venue's session at a time). An
    instrument (or feed depth) ``cal`` has no norms for is read cold, with its own windows
    in the order of ``records``, as the replay reads it."""
    out = []
    cold = ColdStarts()
    for r in records:
        r = json.loads(json.dumps(r))  # a deep copy: the input stays as read
        detail = r.setdefault("detail", {})
        raw = detail.get("raw_score")
        if raw is not None:
            start, end = int(r["window_start_ns"]), int(r["window_end_ns"])
            bucket = cal.bucket(start, end, None if session is None else session(start))
            depth = detail.get("feed_depth")
            if cal.norms and cal.calibrated_key(r["instrument"], depth) is None:
                verdict = cold.apply(
                    WindowScore(
                        score=raw,
                        p_value=None,
                        alert=False,
                        detail={**detail, "bucket": bucket, "facts": r.get("facts", {})},
                    ),
                    r["instrument"],
                    depth,
                    cal,
                )
                r["score"], r["alert"] = verdict.score, verdict.alert
                r["threshold"], r["severity"] = verdict.threshold, verdict.severity
                r["p_value"] = verdict.p_value
                detail["calibration"] = verdict.detail["calibration"]
            else:
                fact_z = _fact_z(r)
                r["score"] = cal.score(raw, fact_z, r["instrument"], bucket)
                r["alert"] = cal.is_alert(r["score"])
                r["threshold"] = cal.threshold
                r["severity"] = cal.severity(r["score"])
                r["p_value"] = cal.p_value(r["score"])
                detail["calibration"] = cal.explain(r["instrument"], bucket, fact_z)
            detail["bucket"] = bucket
            detail["calibrated"] = True
            detail["rescored_with"] = source
        out.append(_clean(r))
    return out
