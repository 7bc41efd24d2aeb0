"""Venue calendars from instrument metadata: session hours, trade dates, the window grid.

Everything here reads an ``Instrument`` (its ``timezone``, ``session_open``/``session_close``
and ``trade_days``), never a venue constant, so the replay and the stream worker place windows
and sessions the same way for any venue. The venues' published schedules, for adapters whose
files do not carry one, are in ``simulator.venues``.

A session whose close is at or before its open spans midnight (CME Globex: 17:00-16:00
Chicago time). Its trade date is the calendar day it closes on: trading day D starts at the
open on D-1 (CME's rule), so a time of day at or after the open on trade date D lies on the
calendar day before, and the daily halt (16:00-17:00) still belongs to the day that closed.
A continuous venue (crypto) trades on every calendar day, in its zone.

>>> from simulator.types import Instrument
>>> es = Instrument("ESH4", timezone="America/Chicago", session_open="17:00",
...                 session_close="16:00")
>>> t = clock_on(es, dt.date(2023, 12, 26), 17 * 3_600 * NS_PER_S)  # trade date 26, 17:00
>>> dt.datetime.fromtimestamp(t / NS_PER_S, dt.UTC).isoformat()
'2023-12-25T23:00:00+00:00'
>>> trade_date(es, t)
datetime.date(2023, 12, 26)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

from simulator.types import Instrument
from simulator.units import NS_PER_DAY, NS_PER_HOUR, NS_PER_S, parse_clock, session_bounds

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ScheduleError(ValueError):
    """Session hours or trading days in instrument metadata that cannot be read."""


def trade_weekdays(spec: str) -> frozenset[int]:
    """``"Mon-Fri"``, ``"Mon-Sun"``, ``"Mon,Wed,Fri"`` -> weekday numbers (Monday 0).

    >>> sorted(trade_weekdays("Sun-Tue"))
    [0, 1, 6]
    """
    days: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        try:
            a = WEEKDAYS.index(first.title())
            b = WEEKDAYS.index(last.title()) if last else a
        except ValueError:
            raise ScheduleError(f"trading days {spec!r}: use e.g. Mon-Fri or Mon,Wed") from None
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _hours(instrument: Instrument) -> tuple[int, int]:
    """(open, close) in ns after local midnight; a close of 24:00 is the day's end."""
    close = instrument.session_close
    return parse_clock(instrument.session_open), (
        NS_PER_DAY if close == "24:00" else parse_clock(close)
    )


def overnight(instrument: Instrument) -> bool:
    """Whether the session spans midnight (so a trade date starts on the day before)."""
    if instrument.continuous:
        return False
    start, end = _hours(instrument)
    return end <= start


def _local_ns(zone: ZoneInfo, ts_ns: int) -> int:
    """Epoch ns -> ns since the local epoch (the venue's wall clock, DST applied)."""
    when = dt.datetime.fromtimestamp(ts_ns // NS_PER_S, zone)
    return ts_ns + int(when.utcoffset().total_seconds()) * NS_PER_S  # type: ignore[union-attr]


def trade_date(instrument: Instrument, ts_ns: int) -> dt.date:
    """The trade date an epoch time belongs to (see the module docstring)."""
    local = _local_ns(ZoneInfo(instrument.timezone), ts_ns)
    day, tod = divmod(local, NS_PER_DAY)
    if overnight(instrument) and tod >= _hours(instrument)[0]:
        day += 1
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


def clock_on(instrument: Instrument, date: dt.date, tod_ns: int) -> int:
    """Epoch ns of the time of day ``tod_ns`` on trade date ``date``: for a session across
    midnight a time at or after the open is on the calendar day before (CME: trade date D,
    17:00 is D-1 17:00 Chicago time)."""
    if not 0 <= tod_ns < NS_PER_DAY:
        raise ScheduleError(f"a time of day lies in [00:00, 24:00), got {tod_ns} ns")
    day = date
    if overnight(instrument) and tod_ns >= _hours(instrument)[0]:
        day = date - dt.timedelta(days=1)
    return _at(ZoneInfo(instrument.timezone), day, tod_ns)


def _at(zone: ZoneInfo, day: dt.date, tod_ns: int) -> int:
    """Epoch ns of a local wall-clock time (``tod_ns`` after midnight, below a day)."""
    seconds, rest = divmod(tod_ns, NS_PER_S)
    clock = dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60)
    return int(dt.datetime.combine(day, clock, tzinfo=zone).timestamp()) * NS_PER_S + rest


def trade_date_bounds(instrument: Instrument, date: dt.date) -> tuple[int, int]:
    """``[start, end)`` of a trade date in epoch ns: local midnight to midnight, or for a
    session across midnight from the open on the day before to the open on ``date``."""
    zone = ZoneInfo(instrument.timezone)
    if overnight(instrument):
        start = _hours(instrument)[0]
        return _at(zone, date - dt.timedelta(days=1), start), _at(zone, date, start)
    return _at(zone, date, 0), _at(zone, date + dt.timedelta(days=1), 0)


def grid_origin(instrument: Instrument, first_ts_ns: int) -> int:
    """Where the window grid of a feed starting at ``first_ts_ns`` begins: the open of the
    session that event is in or, in an overnight session's daily halt (a pre-open), the open
    that ends the halt; a day session's open on the event's day; a continuous venue's local
    midnight. For a feed timed from midnight (LOBSTER) the open's offset from midnight."""
    start = 0 if instrument.continuous else _hours(instrument)[0]
    if first_ts_ns < NS_PER_DAY:
        return start
    zone = ZoneInfo(instrument.timezone)
    day, tod = divmod(_local_ns(zone, first_ts_ns), NS_PER_DAY)
    if overnight(instrument) and tod < _hours(instrument)[1]:
        day -= 1  # after midnight, before the close: the session opened the evening before
    return _at(zone, dt.date(1970, 1, 1) + dt.timedelta(days=day), start)


def session_predicate(instrument: Instrument, *, epoch: bool) -> Callable[[int], bool]:
    """Whether a time is in the venue's continuous session: within its hours and, for epoch
    times, on one of its trade days (CME: Sunday 17:00 to Friday 16:00, since a Sunday
    evening trades for Monday). ``epoch`` False: ns after local midnight, hours only."""
    if instrument.continuous:
        return lambda ts_ns: True
    start, end = _hours(instrument)
    days = trade_weekdays(instrument.trade_days)
    across = end <= start
    zone = ZoneInfo(instrument.timezone)
    offsets: dict[int, int] = {}  # UTC offset per hour of the epoch (changes only at DST)

    def check(ts_ns: int) -> bool:
        if not epoch:
            tod = ts_ns % NS_PER_DAY
            return (start <= tod or tod < end) if across else start <= tod < end
        hour = ts_ns // NS_PER_HOUR
        off = offsets.get(hour)
        if off is None:
            off = offsets[hour] = _local_ns(zone, hour * NS_PER_HOUR) - hour * NS_PER_HOUR
        day, tod = divmod(ts_ns + off, NS_PER_DAY)
        if across:
            if end <= tod < start:
                return False
            day += tod >= start  # an evening trades for the next day
        elif not start <= tod < end:
            return False
        return (day + 3) % 7 in days  # 1970-01-01 was a Thursday (3)

    return check


def session_span(instrument: Instrument, *, epoch: bool) -> Callable[[int], tuple[int, int] | None]:
    """The continuous session a time falls in, ``(open, close)`` in the time's own clock, or
    None outside it (hours and trade days, as ``session_predicate``) or for a venue that never
    closes. The window grid cuts its last window at ``close``; the replay and the stream
    worker both place sessions with this."""
    if instrument.continuous:
        return lambda ts_ns: None
    inside = session_predicate(instrument, epoch=epoch)
    hours = session_bounds(
        instrument.session_open, instrument.session_close, instrument.timezone, epoch=epoch
    )
    return lambda ts_ns: hours(ts_ns) if inside(ts_ns) else None
