"""The day's edges in detection: a window grid that ends at the close (with rollouts of the
short window's length), and a calibration that learns how each fact's z behaves at the open
and the close, leave one instrument out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.types import BookEvent, EventKind, Side
from simulator.units import NS_PER_MIN, parse_clock, session_bounds
from surveillance.detection.detector import POOLED, Calibration
from surveillance.detection.pipeline import WindowedDetector, WindowScore
from surveillance.detection.scoring import DetectionConfig, fork_request
from surveillance.detection.timeofday import CLOSE, MIDDAY, OPEN, TimeOfDay

S = 10**9
NASDAQ = session_bounds("09:30", "16:00", "America/New_York", epoch=False)


class Recorder:
    model_version = "test"

    def __init__(self) -> None:
        self.windows = []

    def __call__(self, window) -> WindowScore:
        self.windows.append(window)
        return WindowScore(score=None, p_value=None, alert=False)


def quotes(times: list[int]) -> list[BookEvent]:
    """A two-sided book from the first two events on, then an add and a delete per time."""
    out = [
        BookEvent(times[0], EventKind.ADD, 1, 100, 10_000, Side.BID, "X", 1),
        BookEvent(times[0], EventKind.ADD, 2, 100, 10_100, Side.ASK, "X", 2),
    ]
    for k, t in enumerate(times[1:]):
        oid = 10 + k
        out.append(BookEvent(t, EventKind.ADD, oid, 100, 9_900, Side.BID, "X", 2 * k + 3))
        out.append(BookEvent(t + S, EventKind.DELETE, oid, 100, 9_900, Side.BID, "X", 2 * k + 4))
    return out


def test_the_last_window_ends_at_the_close_and_its_rollouts_are_that_short() -> None:
    scorer = Recorder()
    detector = WindowedDetector(
        scorer,
        window_ns=25 * NS_PER_MIN,
        origin_ns=parse_clock("09:30"),
        session_bounds=NASDAQ,
    )
    times = [parse_clock("15:00") + k * 60 * S for k in range(59)]  # 15:00 .. 15:58
    for e in quotes(times):
        detector.on_event(e)
    detector.flush()
    grid = [(w.start_ns, w.end_ns, w.horizon_end_ns) for w in scorer.windows]
    close = parse_clock("16:00")
    # 14:55-15:20 and 15:20-15:45 on the grid, then 15:45 to the close (not to 16:10)
    assert grid == [
        (parse_clock("14:55"), parse_clock("15:20"), parse_clock("15:20")),
        (parse_clock("15:20"), parse_clock("15:45"), parse_clock("15:45")),
        (parse_clock("15:45"), close, close),
    ]
    last = scorer.windows[-1]
    assert last.session == (parse_clock("09:30"), close)
    request, _ = fork_request(last, DetectionConfig())
    assert request.start_ns + request.horizon_ns == close  # rollouts stop at the close


def test_after_a_window_cut_at_the_close_the_next_window_starts_at_the_close() -> None:
    scorer = Recorder()
    detector = WindowedDetector(
        scorer, window_ns=25 * NS_PER_MIN, origin_ns=parse_clock("09:30"), session_bounds=NASDAQ
    )
    times = [parse_clock("15:50"), parse_clock("15:55"), parse_clock("16:05")]
    for e in quotes(times):
        detector.on_event(e)
    detector.flush()
    spans = [(w.start_ns, w.end_ns, w.in_session) for w in scorer.windows]
    # the post-close events open a window at the close (outside the session: never scored)
    assert spans[0] == (parse_clock("15:45"), parse_clock("16:00"), True)
    assert spans[1][0] == parse_clock("16:00") and spans[1][1] == parse_clock("16:10")
    assert scorer.windows[1].session is None


def test_without_session_hours_the_grid_is_unchanged() -> None:
    scorer = Recorder()
    detector = WindowedDetector(scorer, window_ns=25 * NS_PER_MIN, origin_ns=parse_clock("09:30"))
    for e in quotes([parse_clock("15:50"), parse_clock("15:59")]):
        detector.on_event(e)
    detector.flush()
    (window,) = scorer.windows
    assert window.end_ns == parse_clock("16:10") and window.session is None
    assert window.horizon_end_ns == parse_clock("15:59") + S + 1  # the stream's own end


def test_buckets_are_read_from_the_session() -> None:
    tod = TimeOfDay()
    session = (parse_clock("09:30"), parse_clock("16:00"))
    assert tod.bucket(parse_clock("09:55"), parse_clock("10:20"), session) == OPEN
    assert tod.bucket(parse_clock("12:00"), parse_clock("12:25"), session) == MIDDAY
    assert tod.bucket(parse_clock("15:45"), parse_clock("16:00"), session) == CLOSE
    assert tod.bucket(parse_clock("15:05"), parse_clock("15:30"), session) == MIDDAY
    with pytest.raises(ValueError):
        TimeOfDay(open_ns=-1)


def day(
    inst: str, rng: np.random.Generator, center: float, close_shift: float
) -> tuple[list, list]:
    """One instrument-day of fact z: 40 midday windows around ``center``, 6 at the open and
    6 at the close, where fact ``a`` sits ``close_shift`` lower (the close's own flow)."""
    windows, buckets = [], []
    for bucket, n, shift in ((MIDDAY, 40, 0.0), (OPEN, 6, 0.0), (CLOSE, 6, close_shift)):
        for _ in range(n):
            z = {"a": float(rng.normal(center + shift, 1)), "b": float(rng.normal(center, 1))}
            windows.append((inst, None, z))
            buckets.append(bucket)
    return windows, buckets


def test_the_close_of_one_instrument_calibrates_the_other_s(tmp_path) -> None:
    rng = np.random.default_rng(30)
    # the simulator misses GOOG by 4 and AMZN by 1 on every window (standardized away per
    # instrument), and both closes sit 6 lower on fact "a" than their middays
    goog, goog_b = day("GOOG", rng, -4.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, -1.0, -6.0)
    windows, buckets = goog + amzn, goog_b + amzn_b
    cal = Calibration.fit_normal(windows, far=0.05, method="test", buckets=buckets)
    # as before time of day: fitted on the midday windows, every window read as midday
    midday = [w for w, b in zip(windows, buckets, strict=True) if b == MIDDAY]
    plain = Calibration.fit_normal(midday, far=0.05, method="test")
    assert cal.time_of_day == TimeOfDay().as_dict()
    # an instrument's own norms come from its 40 midday windows only
    assert cal.norms["GOOG"].windows == 40 and -5 < cal.norms["GOOG"].center["a"] < -3
    # GOOG's close norms are AMZN's closes (6 windows), standardized by AMZN's own norms
    close = cal.tod_norms["GOOG"][CLOSE]
    assert close.instruments == ["AMZN"] and close.windows == 6
    assert -8 < close.center["a"] < -4 and abs(close.center["b"]) < 1.5
    assert cal.tod_norms[POOLED][CLOSE].instruments == ["AMZN", "GOOG"]
    # a usual GOOG close window: an alert without time of day, none with it
    usual_close = {"a": -10.0, "b": -4.0}
    assert cal.score(None, usual_close, "GOOG", CLOSE) < cal.threshold
    assert plain.score(None, usual_close, "GOOG", CLOSE) > plain.threshold
    # ... and a close moved far beyond what the other instrument's close does still alerts
    assert cal.is_alert(cal.score(None, {"a": -22.0, "b": -4.0}, "GOOG", CLOSE))
    # the midday is scored as before
    assert cal.score(None, usual_close, "GOOG", MIDDAY) == pytest.approx(
        plain.score(None, usual_close, "GOOG")
    )
    assert cal.explain("GOOG", CLOSE) == {
        "status": "calibrated",
        "bucket": CLOSE,
        "norms": "GOOG",
        "norm_windows": 40,
        "bucket_windows": 6,
        "bucket_instruments": ["AMZN"],
        "time_of_day": True,
    }
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal


def test_no_window_shifts_the_norms_of_its_own_instrument() -> None:
    rng = np.random.default_rng(7)
    goog, goog_b = day("GOOG", rng, 0.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, 0.0, 0.0)  # AMZN's close is like its midday
    cal = Calibration.fit_normal(goog + amzn, far=0.05, method="test", buckets=goog_b + amzn_b)
    # GOOG's own close (6 lower) is not learnt for GOOG: AMZN's calm close calibrates it
    assert abs(cal.tod_norms["GOOG"][CLOSE].center["a"]) < 1.5
    assert cal.tod_norms["AMZN"][CLOSE].center["a"] < -4
    # one instrument alone has no other instrument to learn its close from
    alone = Calibration.fit_normal(goog, far=0.05, method="test", buckets=goog_b)
    assert "GOOG" not in alone.tod_norms and alone.explain("GOOG", CLOSE)["bucket_windows"] == 0


def test_time_of_day_windows_outside_the_threshold_set_do_not_move_it() -> None:
    rng = np.random.default_rng(11)
    goog, goog_b = day("GOOG", rng, 0.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, 0.0, -6.0)
    windows, buckets = goog + amzn, goog_b + amzn_b
    counted = [b != CLOSE for b in buckets]
    cal = Calibration.fit_normal(
        windows, far=0.05, method="test", buckets=buckets, for_threshold=counted
    )
    assert cal.n_normal == sum(counted)
    with pytest.raises(ValueError):
        Calibration.fit_normal(windows, far=0.05, method="test", buckets=buckets[:-1])


def test_time_of_day_can_be_fitted_onto_an_existing_calibration() -> None:
    rng = np.random.default_rng(5)
    goog, goog_b = day("GOOG", rng, -4.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, -1.0, -6.0)
    windows, buckets = goog + amzn, goog_b + amzn_b
    base = Calibration.fit_normal(windows, far=0.05, method="base")
    grown = base.with_time_of_day(
        [(i, z) for i, _, z in windows], buckets, TimeOfDay(), "open and close"
    )
    assert grown.threshold == base.threshold and grown.norms == base.norms
    assert grown.tod_norms["AMZN"][CLOSE].instruments == ["GOOG"]
    assert grown.method == "base; time of day: open and close"
    assert base.tod_norms == {}  # the base is left as it was


def test_a_calibration_written_before_time_of_day_loads_and_scores_as_midday(tmp_path) -> None:
    rng = np.random.default_rng(3)
    goog, _ = day("GOOG", rng, -4.0, 0.0)
    cal = Calibration.fit_normal(goog, far=0.05, method="test")
    data = _as_old(cal)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = Calibration.load(path)
    assert old.time_of_day == {} and old.tod_norms == {}
    z = {"a": -9.0, "b": -4.0}
    assert old.bucket(0, 1, (0, 2)) == CLOSE  # labelled by the default buckets, scored as midday
    assert old.score(None, z, "GOOG", CLOSE) == pytest.approx(cal.score(None, z, "GOOG"))
    assert old.explain("GOOG", CLOSE)["bucket_windows"] == 0


def _as_old(cal: Calibration) -> dict:
    """The JSON of a calibration file from before time of day (no bucket fields)."""
    from dataclasses import asdict

    data = asdict(cal)
    for key in ("time_of_day", "tod_norms"):
        data.pop(key)
    for norms in data["norms"].values():
        norms.pop("instruments")
    return data


def test_rescoring_a_replay_reads_each_window_in_its_bucket() -> None:
    from surveillance.replay import rescore

    rng = np.random.default_rng(30)
    goog, goog_b = day("GOOG", rng, -4.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, -1.0, -6.0)
    cal = Calibration.fit_normal(goog + amzn, far=0.05, method="test", buckets=goog_b + amzn_b)
    midday = [w for w, b in zip(goog + amzn, goog_b + amzn_b, strict=True) if b == MIDDAY]
    before = Calibration.fit_normal(midday, far=0.05, method="test")

    def record(start: str, end: str) -> dict:
        z = {"a": -10.0, "b": -4.0}  # GOOG's usual close
        return {
            "instrument": "GOOG",
            "window_start_ns": parse_clock(start),
            "window_end_ns": parse_clock(end),
            "score": 99.0,
            "alert": True,
            "facts": {f: {"z": v} for f, v in z.items()},
            "detail": {"raw_score": 3.0},
        }

    records = [record("12:00", "12:25"), record("15:45", "16:10"), {**record("9:30", "9:55")}]
    records[2]["detail"] = {"skipped": "no earlier order flow as context"}
    new = rescore(records, cal, NASDAQ, "cal.json")
    old = rescore(records, before, NASDAQ, "old.json")
    assert [r["detail"].get("bucket") for r in new] == [MIDDAY, CLOSE, None]
    assert old[1]["alert"] and not new[1]["alert"]  # the close reads as a close now
    assert new[0]["score"] == pytest.approx(old[0]["score"])  # the midday as before
    assert new[1]["detail"]["calibration"]["bucket_instruments"] == ["AMZN"]
    assert new[2] == records[2] and records[1]["score"] == 99.0  # unscored kept, input intact


def test_time_of_day_onto_a_calibration_serves_its_instruments_without_their_own_windows() -> None:
    rng = np.random.default_rng(9)
    goog, goog_b = day("GOOG", rng, -4.0, -6.0)
    amzn, amzn_b = day("AMZN", rng, -1.0, -6.0)
    midday = [w for w, b in zip(goog + amzn, goog_b + amzn_b, strict=True) if b == MIDDAY]
    base = Calibration.fit_normal(midday, far=0.05, method="base")
    closes = [(i, z) for (i, _, z), b in zip(amzn, amzn_b, strict=True) if b == CLOSE]
    grown = base.with_time_of_day(closes, [CLOSE] * len(closes), TimeOfDay())
    # only AMZN's closes were given: they calibrate GOOG's close, and AMZN has none of its own
    assert grown.tod_norms["GOOG"][CLOSE].instruments == ["AMZN"]
    assert "AMZN" not in grown.tod_norms


def test_the_benchmark_learns_the_close_from_its_clean_held_out_windows_only_when_asked() -> None:
    from surveillance.studies.evaluate import VariantScore, calibrate

    rng = np.random.default_rng(21)
    normal, results = [], []
    for inst, center in (("GOOG", -4.0), ("AMZN", -1.0)):
        windows, buckets = day(inst, rng, center, -6.0)
        for k, ((_, _, z), b) in enumerate(zip(windows, buckets, strict=True)):
            score = VariantScore(inst, k, "clean", None, {"simulation_uncalibrated": 1.0}, [])
            score.fact_z, score.bucket = dict(z), b
            (normal if b == MIDDAY else results).append(score)
    marked = VariantScore(
        "GOOG", 99, "marking_the_close", "high", {"simulation_uncalibrated": 1.0}, []
    )
    marked.fact_z, marked.bucket = {"a": -40.0, "b": -4.0}, CLOSE
    results.append(marked)
    plain = calibrate(normal, results, far=0.05, method="test")
    assert plain.tod_norms == {} and plain.n_normal == 80
    tod = calibrate(normal, results, far=0.05, method="test", time_of_day=TimeOfDay())
    # the clean closes (and opens) of the held-out span shift the other instrument's norms,
    # the manipulated window never does, and the threshold is still the 80 midday windows'
    assert tod.tod_norms["GOOG"][CLOSE].windows == 6 and tod.n_normal == 80
    assert tod.threshold == plain.threshold
    assert marked.scores["simulation"] == tod.score(None, marked.fact_z, "GOOG", CLOSE)
