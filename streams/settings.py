"""Typed settings of the streaming service: environment variables with the ``SURV_`` prefix.

Built by ``load_settings()`` (never at import time) and passed explicitly::

    settings = load_settings(bootstrap="127.0.0.1:9092")   # keyword overrides win over env
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    rebuild_on_assign: bool = Field(
        True, description="re-read assigned input partitions up to the committed offset"
    )

    # Windows on event time.
    window_s: float = Field(1500.0, gt=0, description="window length (25 minutes)")
    window_origin_ns: int = Field(0, description="event time at which window 0 starts")

    # Detection seam: "module:attribute" of a factory ``(settings) -> WindowScorer``.
    scorer: str | None = None
    model_version: str = "unset"
    config_version: str = "dev"
    executor: Literal["thread", "process"] = "thread"
    executor_workers: int = Field(1, ge=1)

    # Alerts.
    store_url: str = "sqlite:///surveillance-alerts.db"
    session_date: dt.date | None = Field(
        None, description="date of a feed whose ts_ns counts from midnight (LOBSTER)"
    )
    exchange_tz: str = "America/New_York"

    @property
    def window_ns(self) -> int:
        return round(self.window_s * 1_000_000_000)


def load_settings(**overrides: Any) -> StreamSettings:
    """Settings from ``SURV_*`` environment variables; non-None keyword overrides win."""
    return StreamSettings(**{k: v for k, v in overrides.items() if v is not None})
