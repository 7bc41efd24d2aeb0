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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from simulator.feeds import load_feed
from simulator.lobster import FeedError, FileName, load_lobster
from simulator.normalized import BookSnapshot, iter_events, lobster_snapshots, lobster_to_frame
from simulator.types import Instrument
from simulator.units import NS_PER_DAY, NS_PER_S, in_session, iso_time, session_bounds
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import WindowDecision, WindowedDetector
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
    day_start_ns: int = 0  # midnight of the feed's day (venue time zone) in its epoch clock

    def clock(self, ns_after_midnight: int) -> int:
        """A time of day (a case's ``--from``/``--to``) in the feed's clock."""
        return self.day_start_ns + ns_after_midnight


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


def read_input(path: str | Path, fmt: str, *, session_date: dt.date | None = None) -> ReplayInput:
    """Read one file. LOBSTER: the instrument and date come from the file name, the window grid
    starts at the file's start time; normalized: from the events and ``session_date``."""
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
    feed = load_feed(path, fmt)
    frame, bad, meta = feed.frame, feed.malformed, feed.instrument
    if frame.empty:
        raise ReplayError(f"{path}: no events")
    instruments = frame["instrument"].unique().tolist()
    if len(instruments) != 1:
        raise ReplayError(f"{path}: one instrument per file, found {len(instruments)}")
    first = int(frame["ts_ns"].iloc[0])
    origin = first // (60 * NS_PER_S) * (60 * NS_PER_S)
    day_start = 0
    if first >= NS_PER_DAY:
        # epoch times: the day the feed starts (its first venue event: a DBN snapshot is
        # stamped at the request's start, maybe the evening before), at midnight in the
        # venue's time zone; a venue that never closes has its windows on that day's grid
        live = frame["ts_ns"][~frame["synthetic"].to_numpy(bool)]
        begun = int(live.iloc[0]) if len(live) else first
        tz = ZoneInfo(meta.timezone if meta is not None else "UTC")
        day = dt.datetime.fromtimestamp(begun / NS_PER_S, tz).date()
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz)
        day_start = int(midnight.timestamp()) * NS_PER_S
        if meta is not None and meta.continuous:
            origin = day_start
        if session_date is None:
            session_date = day  # the day a dated case (--from/--to with dates) matches
    return ReplayInput(
        path,
        str(instruments[0]),
        frame,
        origin,
        session_date,
        bad,
        feed.snapshots,
        meta=meta,
        day_start_ns=day_start,
    )


def session_of(item: ReplayInput) -> Callable[[int], bool] | None:
    """Whether a time of this input is in its venue's continuous session (None: no session
    known, every time counts)."""
    meta = item.meta
    if meta is None:
        return None
    epoch = item.day_start_ns > 0 or int(item.frame["ts_ns"].iloc[0]) >= NS_PER_DAY
    return in_session(meta.session_open, meta.session_close, meta.timezone, epoch=epoch)


def session_bounds_of(item: ReplayInput) -> Callable[[int], tuple[int, int] | None] | None:
    """The session (open, close) a time of this input falls in (None: no session known)."""
    meta = item.meta
    if meta is None:
        return None
    epoch = item.day_start_ns > 0 or int(item.frame["ts_ns"].iloc[0]) >= NS_PER_DAY
    return session_bounds(meta.session_open, meta.session_close, meta.timezone, epoch=epoch)


def instrument_of(inputs: list[ReplayInput]) -> Instrument | None:
    """The one instrument metadata the inputs share (their tick and price scale go into the
    detection config); None when none carries metadata. Mixed ticks cannot share a scorer."""
    metas = {(i.meta.tick_size, i.meta.price_scale): i.meta for i in inputs if i.meta}
    if len(metas) > 1:
        raise ReplayError(
            "the files have different ticks or price scales: replay them one venue at a time"
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

    def span(self, day: dt.date | None) -> tuple[int, int] | None:
        """The case's part of a day's feed time (None: the day lies outside the case)."""
        if self.start_date is None or self.end_date is None:
            return self.start_ns, self.end_ns
        if day is None:
            raise ReplayError("a case with dates needs inputs with dates (--date)")
        if not self.start_date <= day <= self.end_date:
            return None
        start = self.start_ns if day == self.start_date else 0
        return start, self.end_ns if day == self.end_date else NS_PER_DAY + 1


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
    if isinstance(case, tuple):
        case = Case(*case)
    for item in inputs:
        span = case.span(item.session_date) if case is not None else None
        if span is not None:
            span = (item.clock(span[0]), item.clock(span[1]))  # into the feed's clock
        if case is not None and span is None:
            continue  # a day outside the case
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
        )
        result.files.append(str(item.path))
        result.malformed_rows += item.malformed_rows

        def emit(decisions: list[WindowDecision], item: ReplayInput = item) -> None:
            for d in decisions:
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
                r["score"] = cal.score(r["score"], _fact_z(r), r["instrument"], bucket)
                r["detail"]["calibration"] = cal.explain(r["instrument"], bucket)
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
    bucket (read from its window and ``session``, the venue's session at a time)."""
    out = []
    for r in records:
        r = json.loads(json.dumps(r))  # a deep copy: the input stays as read
        detail = r.setdefault("detail", {})
        raw = detail.get("raw_score")
        if raw is not None:
            start, end = int(r["window_start_ns"]), int(r["window_end_ns"])
            bucket = cal.bucket(start, end, None if session is None else session(start))
            r["score"] = cal.score(raw, _fact_z(r), r["instrument"], bucket)
            r["alert"] = cal.is_alert(r["score"])
            r["threshold"] = cal.threshold
            r["severity"] = cal.severity(r["score"])
            r["p_value"] = cal.p_value(r["score"])
            detail["bucket"] = bucket
            detail["calibration"] = cal.explain(r["instrument"], bucket)
            detail["calibrated"] = True
            detail["rescored_with"] = source
        out.append(_clean(r))
    return out
