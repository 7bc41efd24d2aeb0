"""Times and units: integer nanoseconds, durations and clock times as users write them.

One module for every layer, so a bad ``SURV_WINDOW`` and a bad ``--window`` fail the same way
(``UnitError``, a ``ValueError``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = 24 * NS_PER_HOUR


class UnitError(ValueError):
    """A duration or a time of day that cannot be read."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_NS = {"ms": NS_PER_MS, "s": NS_PER_S, "m": NS_PER_MIN, "min": NS_PER_MIN, "h": NS_PER_HOUR}


def parse_duration(text: str) -> int:
    """``"25m"``, ``"90s"``, ``"1h"``, ``"500ms"`` (a bare number means minutes) -> ns.

    >>> parse_duration("25m") == 25 * NS_PER_MIN, parse_duration("90s") == 90 * NS_PER_S
    (True, True)
    """
    m = _DURATION.match(text)
    if m is None:
        raise UnitError(f"not a duration: {text!r} (use e.g. 25m, 90s, 1h)")
    ns = int(float(m[1]) * _UNIT_NS[m[2] or "m"])
    if ns <= 0:
        raise UnitError(f"duration must be positive: {text!r}")
    return ns


def parse_clock(text: str) -> int:
    """``"HH:MM"`` or ``"HH:MM:SS"`` (exchange time) -> ns after midnight.

    >>> parse_clock("14:30") == (14 * 60 + 30) * NS_PER_MIN
    True
    """
    parts = text.strip().split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        h, mnt = int(parts[0]), int(parts[1])
        s = int(parts[2]) if len(parts) == 3 else 0
        if not (0 <= h < 24 and 0 <= mnt < 60 and 0 <= s < 60):
            raise ValueError
    except ValueError:
        raise UnitError(f"not a time of day: {text!r} (use HH:MM)") from None
    return ((h * 60 + mnt) * 60 + s) * NS_PER_S


def parse_moment(text: str) -> tuple[dt.date | None, int]:
    """``"HH:MM[:SS]"`` (no date) or ``"YYYY-MM-DD HH:MM[:SS]"`` (also with ``T``) -> (the date
    or None, ns after midnight).

    >>> parse_moment("2012-06-22T10:05") == (dt.date(2012, 6, 22), parse_clock("10:05"))
    True
    >>> parse_moment("10:05") == (None, parse_clock("10:05"))
    True
    """
    text = text.strip()
    head, sep, tail = text.replace("T", " ", 1).partition(" ")
    if not sep:
        return None, parse_clock(text)
    try:
        date = dt.date.fromisoformat(head)
    except ValueError:
        raise UnitError(f"not a date and time: {text!r} (use YYYY-MM-DD HH:MM)") from None
    return date, parse_clock(tail)


def clock(ts_ns: int) -> str:
    """``HH:MM:SS`` of a time counted from midnight.

    >>> clock(parse_clock("09:30:15"))
    '09:30:15'
    """
    s = ts_ns // NS_PER_S
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def iso_time(ts_ns: int, session_date: dt.date | None, tz: str) -> str:
    """ISO 8601 of a feed time: exchange-local for times counted from midnight (LOBSTER), else
    UTC for epoch times.

    >>> iso_time(parse_clock("09:30"), dt.date(2012, 6, 21), "America/New_York")
    '2012-06-21T09:30:00-04:00'
    """
    if ts_ns < NS_PER_DAY:
        if session_date is None:
            return (
                (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts_ns // 1000))
                .time()
                .isoformat()
            )
        midnight = dt.datetime.combine(session_date, dt.time(), tzinfo=ZoneInfo(tz))
        return (midnight + dt.timedelta(microseconds=ts_ns // 1000)).isoformat()
    return (
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_ns // 1000)
    ).isoformat()


def in_session(
    open_hhmm: str, close_hhmm: str, timezone: str, *, epoch: bool
) -> Callable[[int], bool]:
    """Whether a time is inside a venue's continuous session (``"HH:MM"`` local open and close;
    a close before the open spans midnight, CME's 17:00 to 16:00; "00:00" to "24:00" never
    closes). ``epoch``: times are ns since the epoch, else ns after local midnight (LOBSTER).

    >>> nasdaq = in_session("09:30", "16:00", "America/New_York", epoch=False)
    >>> nasdaq(parse_clock("09:29")), nasdaq(parse_clock("15:59"))
    (False, True)
    """
    day = NS_PER_DAY
    start = parse_clock(open_hhmm)
    end = day if close_hhmm == "24:00" else parse_clock(close_hhmm)
    if start == 0 and end in (0, day):
        return lambda ts_ns: True
    zone = ZoneInfo(timezone)
    offsets: dict[int, int] = {}  # UTC offset per hour of the epoch (changes only at DST)

    def local_tod(ts_ns: int) -> int:
        if not epoch:
            return ts_ns % day
        hour = ts_ns // NS_PER_HOUR
        off = offsets.get(hour)
        if off is None:
            when = dt.datetime.fromtimestamp(hour * 3600, zone)
            off = offsets[hour] = int(when.utcoffset().total_seconds()) * NS_PER_S  # type: ignore[union-attr]
        return (ts_ns + off) % day

    if start < end:
        return lambda ts_ns: start <= local_tod(ts_ns) < end
    return lambda ts_ns: local_tod(ts_ns) >= start or local_tod(ts_ns) < end


def session_bounds(
    open_hhmm: str, close_hhmm: str, timezone: str, *, epoch: bool
) -> Callable[[int], tuple[int, int] | None]:
    """The continuous session a time falls in, as ``(open, close)`` in the time's own clock
    (ns since the epoch, or after local midnight), or None outside the session or for a venue
    that never closes (no open or close to align windows with). A window grid cuts its last
    window at ``close``, and the calibration reads a window's time of day from both ends.

    >>> nasdaq = session_bounds("09:30", "16:00", "America/New_York", epoch=False)
    >>> [clock(x) for x in nasdaq(parse_clock("15:45"))], nasdaq(parse_clock("16:05"))
    (['09:30:00', '16:00:00'], None)
    >>> cme = session_bounds("17:00", "16:00", "America/Chicago", epoch=False)
    >>> [clock(x % NS_PER_DAY) for x in cme(parse_clock("18:00"))]
    ['17:00:00', '16:00:00']
    """
    day = NS_PER_DAY
    start = parse_clock(open_hhmm)
    end = day if close_hhmm == "24:00" else parse_clock(close_hhmm)
    if start == 0 and end in (0, day):
        return lambda ts_ns: None
    length = (end - start) % day or day  # a close before the open: the session spans midnight
    inside = in_session(open_hhmm, close_hhmm, timezone, epoch=epoch)
    zone = ZoneInfo(timezone)

    def bounds(ts_ns: int) -> tuple[int, int] | None:
        if not inside(ts_ns):
            return None
        if epoch:
            off = dt.datetime.fromtimestamp(ts_ns // NS_PER_S, zone).utcoffset()
            tod = (ts_ns + int(off.total_seconds()) * NS_PER_S) % day  # type: ignore[union-attr]
        else:
            tod = ts_ns % day
        opened = ts_ns - (tod - start) % day
        return opened, opened + length

    return bounds
