"""``surveillance.cli.demo``'s pure parts: the stall deadline it waits on and the scoring-time line of
its summary (the demo itself runs end to end in ``test_stream_service``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from surveillance.cli.demo import DemoError, StallTimer, scoring_line, wait_for_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_restarts_on_progress_and_expires_on_a_stall() -> None:
    clock = FakeClock()
    timer = StallTimer(10.0, clock)
    clock.now = 109.0
    timer.see((5, 0))
    assert not timer.expired()
    clock.now = 118.0  # 9 s after the last progress, 18 s after the start
    timer.see((5, 0))  # the same marker: no progress
    assert not timer.expired()
    clock.now = 119.5
    timer.see((5, 0))
    assert timer.expired()
    timer.see((6, 0))  # progress again
    assert not timer.expired()


def test_without_progress_the_deadline_counts_from_the_start() -> None:
    clock = FakeClock()
    timer = StallTimer(10.0, clock)
    clock.now = 110.5
    assert timer.expired()


def test_a_worker_that_makes_no_progress_fails_with_one_clear_error(tmp_path) -> None:
    # A live process with no state page: nothing ever changes, so the stall deadline expires.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    log = tmp_path / "worker.log"
    log.write_text("")
    try:
        with pytest.raises(DemoError, match=r"no decision within 1 s of no progress"):
            wait_for_state(
                sleeper,
                1,  # nothing listens on port 1
                lambda s: True,
                timeout_s=1.0,
                what="decision",
                log_path=log,
                progress=lambda s: 0,
            )
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_scoring_line_gives_the_median_and_the_slowest_window() -> None:
    recent = [{"score_s": s} for s in (30.0, 10.0, 20.0, 40.0)] + [{"score_s": None}, {}]
    line = scoring_line(recent)
    assert line is not None
    assert "25.0 s per window (median of 4; slowest 40.0 s)" in line
    assert scoring_line([]) is None
