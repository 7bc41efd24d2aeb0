"""Watching the worker: its state page polled until a condition holds (with a deadline that
restarts on progress), and the alert topic read back to its end."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surveillance.cli.demo.base import DemoError

STATE_PATH = "/surveillance/state/"


def _get_state(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{STATE_PATH}", timeout=5) as response:
        return json.load(response)


def _progress(state: dict[str, Any]) -> tuple[int, ...]:
    """What moves while the worker works through the day: records consumed, windows closed
    and windows decided."""
    c, d = state.get("counts", {}), state.get("decisions", {})
    return (
        c.get("events", 0),
        c.get("windows_closed", 0),
        d.get("decisions", 0),
        d.get("scoring_errors", 0),
        d.get("windows_unscored", 0),
    )


class StallTimer:
    """A deadline that restarts whenever progress is seen: a slow machine may take long over
    the whole day, but a worker that stops making progress is caught ``timeout_s`` after its
    last step forward."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._deadline = clock() + timeout_s
        self._last: object = None

    def see(self, progress: object) -> None:
        """Note the worker's progress marker; a new value restarts the deadline."""
        if progress != self._last:
            self._last = progress
            self._deadline = self._clock() + self.timeout_s

    def expired(self) -> bool:
        return self._clock() > self._deadline


def wait_for_state(
    process: subprocess.Popen[bytes],
    port: int,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout_s: float,
    what: str,
    log_path: Path,
    progress: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Poll the worker's state page until ``predicate``; a dead worker or a timeout is an error.

    With ``progress``, ``timeout_s`` counts from the last change of ``progress(state)`` (a
    stall), not from the start."""
    timer = StallTimer(timeout_s)
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise DemoError(f"the worker exited with {process.returncode}:\n{tail}")
        try:
            state = _get_state(port)
            if predicate(state):
                return state
            if progress is not None:
                timer.see(progress(state))
        except OSError:
            pass
        if timer.expired():
            within = f"{timeout_s:.0f} s" + (" of no progress" if progress is not None else "")
            raise DemoError(f"no {what} within {within} (worker log: {log_path})")
        time.sleep(0.25)


async def read_alert_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record on ``topic`` (all partitions, from the beginning to the end offsets)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="surv-demo-alerts",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            if time.monotonic() > deadline:
                raise DemoError(f"could not read {topic} to its end within {timeout_s:.0f} s")
            for batch in (await consumer.getmany(*tps, timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
