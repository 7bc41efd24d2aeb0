"""The demo's shared pieces: where the repository and the default day are, its error, the
options it runs with, the report it hands back, and the exchange-clock format its lines use."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.units import NS_PER_S

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DAY = "lobster-goog-10"  # the data registry's name (surveillance.datasets)


class DemoError(RuntimeError):
    """The demo could not run (no data, the worker died, a step timed out)."""


@dataclass(slots=True)
class DemoOptions:
    path: Path | None = None  # None: DEFAULT_DAY, through the data registry
    fmt: str = "lobster"
    speed: float | None = 300.0
    generator: str = "auto"  # lmm when its checkpoint exists, else empirical
    rollouts: int = 16
    window: str = "25m"
    seed: int = 0
    calibration: str = "auto"
    inject: str | None = None
    inject_at: str | None = None  # HH:MM exchange time
    inject_for: str = "15m"
    intensity: float = 2.0
    until: str | None = None  # HH:MM: stop the day there
    max_events: int | None = None
    store: Path = Path("demo-alerts.sqlite")
    workdir: Path | None = None  # logs; a temp dir by default
    # seconds the worker may go without progress (a record consumed, a window closed or
    # decided) before the demo gives up; the whole day may take longer on a slow machine
    timeout_s: float = 900.0


@dataclass(slots=True)
class DemoReport:
    instrument: str
    date: dt.date | None
    path: Path
    events: int
    first_ts_ns: int
    last_ts_ns: int
    speed: float | None
    generator: str
    generator_note: str
    model_version: str
    rollouts: int
    window: str
    calibration: str
    injected: dict[str, Any] | None
    publish_s: float
    worker: dict[str, Any]  # the worker's final state page
    decisions: list[dict[str, Any]]  # from the store, window order
    alerts: list[dict[str, Any]]  # alert messages from the store
    topic_alerts: int  # messages on the alert topic
    topic_alert_ids: int  # distinct alert ids on the alert topic
    store: Path
    workdir: Path
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return self.topic_alert_ids == len(self.alerts) and {
            a["alert_id"] for a in self.alerts
        } == set(self._topic_ids)

    _topic_ids: list[str] = field(default_factory=list)


def _clock(ts_ns: int) -> str:
    s = ts_ns // NS_PER_S
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
