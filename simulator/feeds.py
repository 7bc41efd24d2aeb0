"""The venue adapters behind one registry: a file in, normalized events and instrument out.

``load_feed(path, fmt)`` is what ``convert``, ``replay``, ``feed`` and ``book-check`` call;
``detect_format`` names a file's format from its name (and, for a log, its first line).

======================  ====================================  ==============================
format                  files                                 adapter
======================  ====================================  ==============================
``lobster``             vendor zip, ``*_message_N.csv``       ``simulator.lobster``
``databento``           ``*.dbn``, ``*.dbn.zst`` (MBO)        ``simulator.databento``
``bitstamp``            ``*.log``, ``*.log.bz2``, ``.log.gz`` ``simulator.bitstamp``
``normalized``          ``*.parquet``, ``*.jsonl``            ``simulator.normalized``
======================  ====================================  ==============================
"""

from __future__ import annotations

import bz2
import gzip
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.lobster import FeedError
from simulator.types import Instrument

FORMATS = ("lobster", "databento", "bitstamp", "normalized")
VENUE_FORMATS = ("lobster", "databento", "bitstamp")  # those with a reconciliation
_BITSTAMP_LINE = re.compile(r"^\d+ (order_created|order_changed|order_deleted|trade|order_book) ")


class UnknownFormat(FeedError):
    """The format was not given and cannot be told from the file."""


@dataclass(slots=True)
class VenueFeed:
    """One file's normalized events, with the instrument's metadata and the adapter's
    reconciliation figures (``None`` for normalized files, which carry their own)."""

    fmt: str
    frame: pd.DataFrame
    instrument: Instrument | None
    malformed: int
    source: str
    check: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    session_date: str | None = None  # LOBSTER: its times count from this day's midnight
    start_ns: int | None = None  # LOBSTER: the file's start time (the window grid's origin)
    # the venue's book snapshots within the feed (LOBSTER: its rows, every 10 s), which
    # repair a book an integrity fault left suspect (``simulator.normalized.BookSnapshot``)
    snapshots: list[Any] = field(default_factory=list)
    instrument_id: str = ""  # the venue's id of the instrument, where it has one (DBN)


def _head_line(path: Path) -> str:
    opener: Any = open
    if path.suffix == ".bz2":
        opener = bz2.open
    elif path.suffix == ".gz":
        opener = gzip.open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            return fh.readline()
    except (OSError, EOFError, ValueError):
        return ""


def detect_format(path: str | Path) -> str:
    """The format a file's name (and a log's first line) says it is in."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".dbn", ".dbn.zst")):
        return "databento"
    if name.endswith((".parquet", ".jsonl")):
        return "normalized"
    if name.endswith((".log", ".log.bz2", ".log.gz")):
        if _BITSTAMP_LINE.match(_head_line(path)):
            return "bitstamp"
        raise UnknownFormat(f"{path}: a log, but not Bitstamp live-order lines; pass --format")
    if name.endswith(".zip") or ("_message_" in name and name.endswith(".csv")):
        return "lobster"
    if path.exists() and zipfile.is_zipfile(path):
        return "lobster"
    raise UnknownFormat(
        f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})"
    )


def load_feed(
    path: str | Path,
    fmt: str | None = None,
    *,
    reconcile: bool = True,
    limit: int | None = None,
    instrument: str | None = None,
) -> VenueFeed:
    """Read a file of one instrument (or the one named by ``instrument``, symbol or venue id)
    into normalized events with its metadata; a file of several without a choice is a
    ``FeedError`` that names them (``load_feeds`` reads them all)."""
    feeds = load_feeds(path, fmt, reconcile=reconcile, limit=limit, instrument=instrument)
    if len(feeds) > 1:
        names = ", ".join(f.instrument.symbol for f in feeds if f.instrument is not None)
        raise FeedError(f"{path}: {len(feeds)} instruments ({names}); choose one (--instrument)")
    return feeds[0]


def load_feeds(
    path: str | Path,
    fmt: str | None = None,
    *,
    reconcile: bool = True,
    limit: int | None = None,
    instrument: str | None = None,
) -> list[VenueFeed]:
    """Read a file into normalized events with its instrument metadata: one ``VenueFeed`` per
    instrument (a DBN file may hold several), or only ``instrument``'s. ``reconcile``:
    LOBSTER's depth reconciliation, Bitstamp's resync from its snapshots (both written as
    synthetic events); ``limit`` reads only the first records or lines (Databento,
    Bitstamp)."""
    feeds = _load_feeds(Path(path), fmt, reconcile=reconcile, limit=limit)
    if instrument is None:
        return feeds
    chosen = [
        f
        for f in feeds
        if instrument in (f.instrument.symbol if f.instrument else "", f.instrument_id)
        or (f.instrument is None and instrument in set(f.frame["instrument"]))
    ]
    if not chosen:
        names = ", ".join(f.instrument.symbol for f in feeds if f.instrument is not None)
        raise FeedError(
            f"{path}: no instrument {instrument!r} (it holds {names or 'no named one'})"
        )
    return chosen


def _load_feeds(
    path: Path, fmt: str | None, *, reconcile: bool, limit: int | None
) -> list[VenueFeed]:
    if fmt in (None, "auto"):
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise UnknownFormat(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise FeedError(f"no such file: {path}")
    if fmt == "lobster":
        from simulator.lobster import load_lobster
        from simulator.normalized import lobster_snapshots, lobster_to_frame

        day = load_lobster(path, with_orderbook=reconcile)
        frame = lobster_to_frame(day, reconcile=reconcile)
        return [
            VenueFeed(
                fmt,
                frame,
                day.instrument,
                day.malformed_rows,
                str(path),
                None,
                list(day.notes),
                day.date,
                day.name.start_ms * 1_000_000,
                lobster_snapshots(day, frame) if reconcile else [],
            )
        ]
    if fmt == "databento":
        from simulator.databento import check_databento, load_databento_all

        return [
            VenueFeed(
                fmt,
                dbn.frame,
                dbn.instrument,
                dbn.malformed,
                str(path),
                check_databento(dbn),
                instrument_id=str(dbn.instrument_id),
            )
            for dbn in load_databento_all(path, limit=limit)
        ]
    if fmt == "bitstamp":
        from simulator.bitstamp import check_bitstamp, load_bitstamp

        bs = load_bitstamp(path, limit=limit, resync=reconcile)
        return [
            VenueFeed(fmt, bs.frame, bs.instrument, bs.malformed, str(path), check_bitstamp(bs))
        ]
    from simulator.normalized import read_events, read_metadata

    frame, bad = read_events(path)
    return [VenueFeed(fmt, frame, read_metadata(path), bad, str(path))]


def merge_feeds(feeds: list[VenueFeed]) -> tuple[pd.DataFrame, list[Any]]:
    """Several instruments' events in one time-ordered frame (ties keep each feed's order,
    the feeds in the order given), and the book snapshots: what ``feed`` publishes for a file
    of several instruments. Snapshots (a ``BookSnapshot`` names no instrument; only LOBSTER
    files, of one instrument each, have them) travel only with a single feed."""
    import numpy as np

    if len(feeds) == 1:
        return feeds[0].frame, list(feeds[0].snapshots)
    if any(f.snapshots for f in feeds):
        raise ValueError("book snapshots of several instruments cannot be merged")
    frame = pd.concat([f.frame for f in feeds], ignore_index=True)
    order = np.argsort(frame["ts_ns"].to_numpy(np.int64), kind="stable")
    return frame.iloc[order].reset_index(drop=True), []


def venue_day_start(frame: pd.DataFrame, instrument: Instrument | None) -> int:
    """Midnight, in the venue's time zone, of the day an epoch-clocked feed begins (its first
    venue event, not a synthetic seed), in the feed's clock; 0 for a feed already counted from
    midnight (LOBSTER). Subtracted from ``ts_ns`` it gives times of day, the clock the window
    grid, the benchmark and the order model's time features read."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    if frame.empty:
        return 0
    first = int(frame["ts_ns"].iloc[0])
    if first < 86_400 * 1_000_000_000:
        return 0
    live = frame["ts_ns"][~frame["synthetic"].to_numpy(bool)]
    begun = int(live.iloc[0]) if len(live) else first
    tz = ZoneInfo(instrument.timezone if instrument is not None else "UTC")
    day = dt.datetime.fromtimestamp(begun / 1e9, tz).date()
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return int(midnight.timestamp()) * 1_000_000_000


def feed_instrument(path: str | Path, fmt: str) -> Instrument | None:
    """A file's instrument metadata without converting the whole file (a Bitstamp log names
    none: the adapter's BTC/USD; a Databento file: from its first records)."""
    if fmt == "bitstamp":
        from simulator.bitstamp import instrument

        return instrument()
    if fmt == "normalized":
        from simulator.normalized import read_metadata

        return read_metadata(path)
    if fmt == "lobster":  # a NASDAQ stock, named by the file
        found = re.search(r"([A-Za-z.]+)_\d{4}-\d{2}-\d{2}", Path(path).name)
        return Instrument(found[1] if found else Path(path).stem)
    return load_feeds(path, fmt, limit=1_000)[0].instrument
