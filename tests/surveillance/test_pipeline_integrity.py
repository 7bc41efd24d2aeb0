"""A book that lost an event is suspect until a snapshot repairs it: its windows are decided as
degraded (never scored, never an alert), and say why."""

from __future__ import annotations

from simulator.types import BookEvent, EventKind, Side
from surveillance.detection.pipeline import WindowedDetector, WindowScore

S = 10**9


class CountingScorer:
    model_version = "test"

    def __init__(self) -> None:
        self.scored: list[int] = []

    def __call__(self, window) -> WindowScore:
        self.scored.append(window.start_ns)
        return WindowScore(score=1.0, p_value=0.5, alert=True)


def feed(seqs: list[int], t0: int = 0) -> list[BookEvent]:
    """An add and its delete per pair of seq numbers, one second apart."""
    out = []
    for k, seq in enumerate(seqs):
        oid = 1 + k // 2
        kind = EventKind.ADD if k % 2 == 0 else EventKind.DELETE
        price = 10_000 - 100 * (oid % 3)
        out.append(BookEvent(t0 + k * S, kind, oid, 100, price, Side.BID, "X", seq))
    return out


def test_a_gap_in_seq_degrades_windows_until_a_snapshot_repairs_the_book() -> None:
    scorer = CountingScorer()
    detector = WindowedDetector(scorer, window_ns=10 * S, check_seq=True)
    decisions = []
    # window 0: seq 0..9 clean; window 1: seq 12 follows 9 (two events lost)
    events = feed(list(range(10)) + list(range(12, 22)) + list(range(22, 32)))
    for e in events[:20]:
        decisions += detector.on_event(e)
    # window 2 opens on the suspect book; a snapshot arrives inside it; window 4 is clean
    for e in events[20:26]:
        decisions += detector.on_event(e)
    assert detector.pipeline("X").snapshot({}, {}, 10) == "repaired"
    assert detector.pipeline("X").snapshot({}, {}, 10) == "verified"
    for e in events[26:]:
        decisions += detector.on_event(e)
    decisions += detector.on_event(
        BookEvent(40 * S, EventKind.ADD, 99, 100, 9_900, Side.BID, "X", 32)
    )
    decisions += detector.flush()
    assert [d.start_ns // S for d in decisions] == [0, 10, 20, 40]
    status = [d.verdict.detail.get("status", "scored") for d in decisions]
    assert status == ["scored", "degraded", "degraded", "scored"]
    assert scorer.scored == [0, 40 * S]  # degraded windows are never scored
    lost = decisions[1].verdict
    assert not lost.alert and lost.score is None
    assert lost.detail["faults"] == {"sequence_gaps": 1}
    assert "1 sequence gaps" in lost.detail["skipped"]
    assert "not yet repaired" in decisions[2].verdict.detail["skipped"]


def test_a_snapshot_that_disagrees_with_a_trusted_book_is_a_fault_and_repairs_it() -> None:
    scorer = CountingScorer()
    detector = WindowedDetector(scorer, window_ns=10 * S, check_seq=True)
    decisions = []
    for e in feed(list(range(10))):
        decisions += detector.on_event(e)
    pipe = detector.pipeline("X")
    assert pipe.snapshot({}, {}, 5) == "verified"  # every add was deleted: an empty book
    assert pipe.snapshot({9_900: 300}, {}, 5) == "mismatch"  # liquidity the feed never sent
    assert pipe.book.depth(1, 5) == [(9_900, 300)] and not pipe.suspect
    decisions += detector.on_event(
        BookEvent(12 * S, EventKind.ADD, 50, 100, 9_800, Side.BID, "X", 10)
    )
    decisions += detector.flush()
    assert [d.verdict.detail.get("faults") for d in decisions] == [{"snapshot_mismatches": 1}, None]


def test_without_seq_checks_and_on_a_clean_feed_nothing_is_degraded() -> None:
    scorer = CountingScorer()
    detector = WindowedDetector(scorer, window_ns=10 * S)  # seq not checked: the gap is unseen
    decisions = []
    for e in feed(list(range(10)) + list(range(12, 22))):
        decisions += detector.on_event(e)
    decisions += detector.flush()
    assert all("status" not in d.verdict.detail for d in decisions)
    assert scorer.scored == [0, 10 * S]
