"""Typed settings of the streaming service: environment variables with the ``SURV_`` prefix.

Built by ``load_settings()`` (never at import time) and passed explicitly::

    settings = load_settings(bootstrap="127.0.0.1:9092")   # keyword overrides win over env
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from simulator.units import parse_duration
from surveillance.detection.settings import DetectionSettings


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SURV_", extra="forbid")

    # Broker and topics.
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "surv"
    partitions: int = Field(3, ge=1, description="partitions of the input and alert topics")
    topics_timeout_s: float = Field(60.0, gt=0, description="bounded wait for the broker")

    # The faust app.
    app_id: str = "surveillance"
    faust_store: str = "memory://"
    state_dir: str | None = Field(
        None,
        description="faust's state directory (tables' local files); default: a private "
        "temporary directory, removed when the process exits (the memory store keeps nothing "
        "there, and the changelog topics hold the tables)",
    )
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "info"
    rebalance_timeout_s: float = Field(
        60.0,
        gt=0,
        description="consumer group rebalance timeout; tansu holds a group join for about half",
    )
    session_timeout_s: float = Field(60.0, gt=0)
    max_fetch_bytes: int = Field(
        8 * 1024 * 1024, gt=0, description="most bytes fetched per partition per request"
    )
    fetch_max_wait_ms: int = Field(
        100,
        gt=0,
        description="longest the broker holds a worker's fetch that finds no data (faust's "
        "own 1500 ms stalls ingest: see streams.transport)",
    )
    rebuild_on_assign: bool = Field(
        True, description="re-read assigned input partitions up to the committed offset"
    )

    # What this process does (``worker --role``): "both" ingests and scores in one process
    # (the demo, small venues); "ingest" keeps books and windows and publishes closed windows
    # to ``{prefix}.windows``; "scorer" consumes that topic in its own consumer group, scores
    # what one poll brings as one batch and stores / publishes the decisions.
    role: Literal["both", "ingest", "scorer"] = "both"
    window_partitions: int | None = Field(
        None, ge=1, description="partitions of the closed-window topic (default: partitions)"
    )
    score_batch: int = Field(
        64, ge=1, description="most closed windows scored in one call (one Engine.fork)"
    )
    max_rollouts: int | None = Field(
        None,
        ge=1,
        description="most rollouts one scoring call steps at once (a window waits for slots; "
        "the bound on its memory); unset: all of the call's windows' rollouts together",
    )
    max_pending_windows: int = Field(
        256,
        ge=1,
        description="role both: closed windows waiting to be scored before the worker stops "
        "consuming until scoring catches up (lag grows on the topic, not memory in the worker)",
    )
    scorer_max_poll_s: float = Field(
        1800.0,
        gt=0,
        description="longest a scorer may score one batch before the group gives its "
        "partitions to another scorer",
    )
    max_window_bytes: int = Field(
        32 * 1024 * 1024,
        gt=0,
        description="largest closed-window record (producer request size, topic max.message"
        ".bytes); a 25-minute GOOG window is about 1.2 MB",
    )

    # Windows on event time. The grid starts at the session open of the first event's day,
    # as in the offline replay (a LOBSTER file's start time, 09:30), so a live window and a
    # replayed one are the same window (same bounds, same id).
    window_s: float = Field(1500.0, gt=0, description="window length (25 minutes)")
    window: str | None = Field(
        None, description="window length as a duration (25m, 90s, 1h); overrides window_s"
    )
    session_open: dt.time = Field(dt.time(9, 30), description="exchange-local session open")
    window_origin_ns: int | None = Field(
        None, description="explicit event time at which window 0 starts (overrides the open)"
    )

    # Detection. ``scorer``: "module:attribute" of a factory ``(settings) -> WindowScorer``;
    # the default is the product's SimulationScorer built from the settings below
    # (``surveillance.cli.wiring.worker_scorer``); "none": windows close but are not scored.
    scorer: str | None = "surveillance.cli.wiring:worker_scorer"
    generator: Literal["lmm", "empirical"] = "lmm"
    model: str | None = Field(None, description="LMM checkpoint (default: the bundled one)")
    device: str = "cpu"
    rollouts: int = Field(16, ge=3, description="simulated futures per window")
    seed: int = 0
    calibration: str = Field(
        "auto",
        description="calibration JSON path, 'none', or 'auto' (the bundled one that matches "
        "the scorer's model version)",
    )
    config_version: str = "dev"
    executor: Literal["thread", "process"] = "thread"
    executor_workers: int = Field(1, ge=1)

    # Alerts.
    store_url: str = "sqlite:///surveillance-alerts.db"
    # A decision whose alert, records or row cannot be written (a broker or database that is
    # away for a moment) is written again, waiting record_backoff_s, then twice that, ...
    record_attempts: int = Field(4, ge=1, le=20, description="tries to write one window's decision")
    record_backoff_s: float = Field(
        0.5, ge=0.0, le=30.0, description="wait before the second try (then doubled, to 30 s)"
    )
    session_date: dt.date | None = Field(
        None, description="date of a feed whose ts_ns counts from midnight (LOBSTER)"
    )
    exchange_tz: str = "America/New_York"

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # a UnitError (ValueError): pydantic names SURV_WINDOW
        return value

    @property
    def windows_partitions(self) -> int:
        return self.window_partitions or self.partitions

    @property
    def scorer_group(self) -> str:
        """Consumer group of the scorer processes (the ingest workers' is ``app_id``)."""
        return f"{self.app_id}-scorers"

    @property
    def window_ns(self) -> int:
        if self.window is not None:
            return parse_duration(self.window)
        return round(self.window_s * 1_000_000_000)

    def detection(self) -> DetectionSettings:
        """The detection settings these ``SURV_*`` variables set (as the command line's
        options do for ``replay``)."""
        return DetectionSettings(
            window_ns=self.window_ns,
            rollouts=self.rollouts,
            seed=self.seed,
            generator=self.generator,
            model=self.model,
            device=self.device,
            calibration=self.calibration,
        )


def load_settings(**overrides: Any) -> StreamSettings:
    """Settings from ``SURV_*`` environment variables; non-None keyword overrides win."""
    return StreamSettings(**{k: v for k, v in overrides.items() if v is not None})
