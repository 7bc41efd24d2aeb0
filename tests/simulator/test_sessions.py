"""Venue calendars from instrument metadata: CME's overnight session and trade dates, a
continuous venue, NASDAQ's day session."""

from __future__ import annotations

import datetime as dt

import pytest

from simulator.bitstamp import instrument as bitstamp_instrument
from simulator.databento import instrument_for
from simulator.sessions import (
    ScheduleError,
    clock_on,
    grid_origin,
    session_predicate,
    session_span,
    trade_date,
    trade_date_bounds,
    trade_weekdays,
)
from simulator.types import Instrument
from simulator.units import NS_PER_DAY, parse_clock

ES = instrument_for("ESH4", "GLBX.MDP3", 2_500)  # the venue table's CME Globex schedule
NS = 1_000_000_000


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * NS


def test_es_takes_cme_globex_hours_from_the_venue_table() -> None:
    assert (ES.timezone, ES.session_open, ES.session_close, ES.trade_days) == (
        "America/Chicago",
        "17:00",
        "16:00",
        "Mon-Fri",
    )


def test_a_cme_trade_date_starts_at_17_00_chicago_on_the_calendar_day_before() -> None:
    # December: Chicago is UTC-6. 17:00 CT on Monday 2023-12-25 is 23:00 UTC
    assert clock_on(ES, dt.date(2023, 12, 26), parse_clock("17:00")) == utc(2023, 12, 25, 23)
    assert clock_on(ES, dt.date(2023, 12, 26), parse_clock("09:00")) == utc(2023, 12, 26, 15)
    assert trade_date(ES, utc(2023, 12, 25, 23)) == dt.date(2023, 12, 26)
    assert trade_date(ES, utc(2023, 12, 25, 21, 59)) == dt.date(2023, 12, 25)  # 15:59 CT
    # the daily halt (16:00-17:00 CT) still belongs to the trade date that closed
    assert trade_date(ES, utc(2023, 12, 25, 22, 30)) == dt.date(2023, 12, 25)
    assert trade_date_bounds(ES, dt.date(2023, 12, 26)) == (
        utc(2023, 12, 25, 23),
        utc(2023, 12, 26, 23),
    )
    assert clock_on(ES, dt.date(2023, 12, 26), parse_clock("16:30")) == utc(2023, 12, 26, 22, 30)
    # July: Chicago is UTC-5, the same wall clock one hour earlier in UTC
    assert clock_on(ES, dt.date(2024, 7, 9), parse_clock("17:00")) == utc(2024, 7, 8, 22)
    with pytest.raises(ScheduleError):
        clock_on(ES, dt.date(2024, 7, 9), NS_PER_DAY)


def test_cme_trades_sunday_evening_to_friday_afternoon_with_a_daily_halt() -> None:
    in_session = session_predicate(ES, epoch=True)
    # 2023-12-22 is a Friday; Chicago is UTC-6
    assert in_session(utc(2023, 12, 22, 21, 59))  # Friday 15:59
    assert not in_session(utc(2023, 12, 22, 22, 30))  # Friday 16:30: closed
    assert not in_session(utc(2023, 12, 22, 23, 30))  # Friday 17:30: no session for Saturday
    assert not in_session(utc(2023, 12, 23, 18))  # Saturday
    assert not in_session(utc(2023, 12, 24, 22, 59))  # Sunday 16:59
    assert in_session(utc(2023, 12, 24, 23))  # Sunday 17:00 opens Monday's trade date
    assert not in_session(utc(2023, 12, 26, 22, 30))  # Tuesday 16:30: the daily halt
    assert in_session(utc(2023, 12, 26, 23, 1))  # Tuesday 17:01
    # times after midnight (no date): hours only
    by_clock = session_predicate(ES, epoch=False)
    assert by_clock(parse_clock("17:00")) and by_clock(parse_clock("03:00"))
    assert not by_clock(parse_clock("16:30"))


def test_a_session_span_is_the_open_and_close_a_time_trades_between() -> None:
    span = session_span(ES, epoch=True)
    # Tuesday 2023-12-26 10:00 Chicago trades in the session that opened Monday 17:00
    assert span(utc(2023, 12, 26, 16)) == (utc(2023, 12, 25, 23), utc(2023, 12, 26, 22))
    assert span(utc(2023, 12, 26, 22, 30)) is None  # the daily halt
    assert span(utc(2023, 12, 23, 18)) is None  # Saturday: hours alone would say open
    nasdaq = session_span(Instrument("GOOG"), epoch=False)
    assert nasdaq(parse_clock("15:45")) == (parse_clock("09:30"), parse_clock("16:00"))
    assert nasdaq(parse_clock("16:05")) is None
    assert session_span(bitstamp_instrument("btcusd"), epoch=True)(utc(2015, 5, 1, 12)) is None


def test_the_window_grid_starts_at_the_session_open_of_the_first_events_trade_date() -> None:
    # the ES file's first venue event, 16:00:00.18 CT on 2023-12-25, in the halt: the open
    # that ends it (17:00 CT); an event in the session: its open, the evening before or not
    first = utc(2023, 12, 25, 22) + 181_198_464
    assert grid_origin(ES, first) == utc(2023, 12, 25, 23)
    assert grid_origin(ES, utc(2023, 12, 26, 9)) == utc(2023, 12, 25, 23)  # 03:00 CT
    assert grid_origin(ES, utc(2023, 12, 26, 0)) == utc(2023, 12, 25, 23)  # 18:00 CT
    btc = bitstamp_instrument()
    assert grid_origin(btc, utc(2015, 5, 1, 0, 0, 7)) == utc(2015, 5, 1)
    assert session_predicate(btc, epoch=True)(utc(2015, 5, 2, 12))  # a Saturday trades
    nasdaq = Instrument("AAPL")
    assert grid_origin(nasdaq, parse_clock("09:31")) == parse_clock("09:30")
    assert grid_origin(nasdaq, utc(2012, 6, 21, 15)) == utc(2012, 6, 21, 13, 30)
    assert not session_predicate(nasdaq, epoch=True)(utc(2012, 6, 23, 15))  # a Saturday


def test_trading_days_are_read_or_refused() -> None:
    assert trade_weekdays("Mon-Fri") == frozenset(range(5))
    assert trade_weekdays("Sun-Tue") == frozenset({6, 0, 1})
    assert trade_weekdays("mon,wed") == frozenset({0, 2})
    with pytest.raises(ScheduleError, match="trading days"):
        trade_weekdays("weekdays")
