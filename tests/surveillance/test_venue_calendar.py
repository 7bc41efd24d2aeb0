"""The replay on a CME feed: windows on the session open of the trade date, the pre-open
decided outside the session, and ``--from/--to`` dates read as CME trade dates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

dbn = pytest.importorskip("databento_dbn")

from surveillance.detection.pipeline import ClosedWindow, WindowScore  # noqa: E402
from surveillance.detection.scoring import DetectionConfig  # noqa: E402
from surveillance.replay import Case, read_inputs, replay  # noqa: E402
from tests.simulator.test_databento_instruments import ES_ID, POINT, rec, write  # noqa: E402

NS = 1_000_000_000
MIN = 60 * NS
T0 = int(dt.datetime(2023, 12, 25, 22, tzinfo=dt.UTC).timestamp()) * NS  # 16:00 Chicago


class CountingScorer:
    """Scores a window by its event count (no simulation): the replay's plumbing only."""

    config = DetectionConfig()
    model_version = "test-count"
    config_version = "test"

    def __call__(self, window: ClosedWindow) -> WindowScore:
        return WindowScore(score=float(len(window.events)), p_value=None, alert=False)


def es_evening(tmp_path: Path) -> Path:
    """ESH4 from 16:00 to 18:30 Chicago time on Monday 2023-12-25: one add every 10 minutes,
    bids and asks a tick apart (the book never crosses)."""
    records = [
        rec(ES_ID, T0 + k * 10 * MIN, "A", "B" if k % 2 else "A", 4800.25 - 0.25 * (k % 2), 1, k)
        for k in range(16)
    ]
    assert POINT == NS  # DBN's fixed point is 1e-9, like the nanoseconds here
    return write(tmp_path, records, ["ESH4"])


def utc(hour: int, minute: int, day: int = 25) -> int:
    return int(dt.datetime(2023, 12, day, hour, minute, tzinfo=dt.UTC).timestamp()) * NS


def starts(records: list[dict]) -> list[int]:
    return [r["window_start_ns"] for r in records]


def test_the_windows_start_at_the_trade_dates_open_and_the_pre_open_is_outside(tmp_path) -> None:
    [item] = read_inputs(es_evening(tmp_path), "databento")
    assert item.session_date == dt.date(2023, 12, 26)  # the evening trades for Tuesday
    assert item.origin_ns == utc(23, 0)  # 17:00 Chicago
    records = replay([item], CountingScorer()).records  # type: ignore[arg-type]
    assert starts(records) == [
        utc(21, 45),
        utc(22, 10),
        utc(22, 35),
        utc(23, 0),
        utc(23, 25),
        utc(23, 50),
        utc(0, 15, day=26),
    ]
    status = [r["detail"].get("status") for r in records]
    # 15:45 Chicago is still Monday's session (exchange holidays are not modelled); the halt
    # and pre-open (16:00-17:00) are outside it
    assert status == [None, "outside_session", "outside_session", None, None, None, None]
    assert [r["score"] for r in records[3:]] == [3.0, 2.0, 3.0, 2.0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # trade date 2023-12-26 at 17:00 is 17:00 Chicago on the 25th (23:00 UTC)
        (Case(17 * 60 * MIN, 17 * 60 * MIN + 50 * MIN, dt.date(2023, 12, 26), dt.date(2023, 12, 26)),
         [utc(23, 0), utc(23, 25)]),
        # without dates: the times of the feed's trade date
        (Case(17 * 60 * MIN, 17 * 60 * MIN + 50 * MIN), [utc(23, 0), utc(23, 25)]),
        # calendar day 25 holds these hours, but trade date 25 ended at 16:00 that day
        (Case(17 * 60 * MIN, 17 * 60 * MIN + 50 * MIN, dt.date(2023, 12, 25), dt.date(2023, 12, 25)),
         []),
        # from trade date 26's start (17:00 on the 25th) to 16:30 on it: its whole session,
        # not the halt before (trade date 25's)
        (Case(0, 16 * 60 * MIN + 30 * MIN, dt.date(2023, 12, 25), dt.date(2023, 12, 26)),
         [utc(23, 0), utc(23, 25), utc(23, 50), utc(0, 15, day=26)]),
    ],
)  # fmt: skip
def test_case_dates_are_cme_trade_dates(tmp_path: Path, case: Case, expected: list[int]) -> None:
    [item] = read_inputs(es_evening(tmp_path), "databento")
    assert starts(replay([item], CountingScorer(), case=case).records) == expected  # type: ignore[arg-type]


def test_each_instrument_of_a_dbn_file_is_its_own_replay_input(tmp_path: Path) -> None:
    from surveillance.replay import instrument_of
    from tests.simulator.test_databento_instruments import two_instruments

    path = two_instruments(tmp_path)
    items = read_inputs(path, "databento")
    assert [(i.instrument, len(i.frame)) for i in items] == [("17077", 4), ("NQH4", 2), ("ZZH4", 1)]
    # every event is in the 16:00-17:00 halt: the grid starts at the open that ends it, and
    # the date is the halt's (the trade date that closed at 16:00)
    assert {(i.origin_ns, i.session_date) for i in items} == {(utc(23, 0), dt.date(2023, 12, 25))}
    with pytest.raises(ValueError, match="--instrument"):
        instrument_of(items)  # ES and NQ tick 0.25, ZZ 0.1: one scorer cannot serve them
    [nq] = read_inputs(path, "databento", instrument="NQH4")
    assert instrument_of([nq]) == nq.meta and nq.meta is not None and nq.meta.tick_size == 2_500
