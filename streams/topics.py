"""Topic names and explicit topic creation.

Topics are created up front with the partition counts the faust app expects: a topic that a
producer auto-creates gets the broker's default count, and faust then refuses the table
changelog (its partitions must match the source topic's).

=========================  ==========  =====================================================
topic                      partitions  content
=========================  ==========  =====================================================
``{prefix}.events``        N           normalized events, key = instrument: one event
                                       (JSON object) or a batch of the instrument's
                                       events (JSON array), ``streams.records``
``{prefix}.alerts``        N           alert messages (``alerts/schemas/alert-v2.json``),
                                       key = instrument
``{prefix}.windows``       W (= N)     closed windows to score (``streams.windows``),
                                       key = instrument; ingest -> scorer workers
``{prefix}.decisions``     N           a record per window decided, alert or not
                                       (``alerts.schema.decision_record``), key = instrument
``{prefix}.data-quality``  N           a record per window decided as degraded (its book
                                       was suspect: ``alerts.schema.quality_record``),
                                       key = instrument
``{prefix}.dead-letter``   1           undecodable input, with the reason
``{app_id}-dead_letters-   N           faust changelog of the dead-letter counter table
changelog``
=========================  ==========  =====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from streams.broker import probe
from streams.settings import StreamSettings

log = logging.getLogger(__name__)

#: Name of the faust table counting dead letters (its changelog topic derives from it).
DEAD_LETTER_TABLE = "dead_letters"


class TopicError(RuntimeError):
    """Topics could not be created, or exist with the wrong partition count."""


@dataclass(frozen=True, slots=True)
class TopicNames:
    events: str
    alerts: str
    dead_letter: str
    windows: str = ""
    quality: str = ""
    decisions: str = ""

    @classmethod
    def for_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            f"{prefix}.events",
            f"{prefix}.alerts",
            f"{prefix}.dead-letter",
            f"{prefix}.windows",
            f"{prefix}.data-quality",
            f"{prefix}.decisions",
        )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1
    config: dict[str, str] = field(default_factory=dict)


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog name faust derives for ``table`` of app ``app_id`` (app version 1)."""
    return f"{app_id}-{table}-changelog"


def app_topic_specs(settings: StreamSettings) -> list[TopicSpec]:
    """Every topic the worker reads or writes, with the partition counts it expects."""
    names = TopicNames.for_prefix(settings.topic_prefix)
    n = settings.partitions
    return [
        TopicSpec(names.events, n),
        TopicSpec(names.alerts, n),
        TopicSpec(names.quality, n),
        TopicSpec(names.decisions, n),
        TopicSpec(names.dead_letter, 1),
        # Scorers re-read nothing older than their committed offset: a day's windows retained
        # covers a scorer group that is down for hours (OPERATIONS.md).
        TopicSpec(
            names.windows,
            settings.windows_partitions,
            config={"max.message.bytes": str(settings.max_window_bytes)},
        ),
        TopicSpec(changelog_topic(settings.app_id, DEAD_LETTER_TABLE), n),
    ]


async def ensure_topics_async(
    bootstrap: str,
    spec: list[TopicSpec],
    *,
    timeout_s: float = 60.0,
    interval_s: float = 1.0,
) -> dict[str, str]:
    """Create the topics of ``spec`` that do not exist; check the partitions of those that do.

    Returns ``{name: "created" | "exists"}``. A broker that is not up yet is retried with one
    log line per attempt until ``timeout_s`` has passed; then ``TopicError``.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, KafkaError

    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=10_000, client_id="surv-topics"
        )
        try:
            # A raw ApiVersions probe first: an unreachable broker is then one clear line
            # instead of aiokafka's connection errors.
            await asyncio.to_thread(probe, bootstrap, timeout_s=min(2.0, timeout_s))
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [s for s in spec if s.name not in existing]
            outcome = {s.name: "exists" for s in spec if s.name in existing}
            if missing:
                response = await admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, s.replication, topic_configs=s.config)
                        for s in missing
                    ]
                )
                for name, code, message in _topic_errors(response):
                    if code == 36:  # TOPIC_ALREADY_EXISTS: created by someone else meanwhile
                        outcome[name] = "exists"
                    elif code != 0:
                        raise TopicError(f"cannot create topic {name}: error {code} {message}")
                    else:
                        outcome[name] = "created"
            described = await admin.describe_topics([s.name for s in spec])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for s in spec:
                if counts.get(s.name) != s.partitions:
                    raise TopicError(
                        f"topic {s.name} has {counts.get(s.name)} partitions, "
                        f"expected {s.partitions}; delete it or change the settings"
                    )
            for name, what in outcome.items():
                log.info("topic %s: %s", name, what)
            return outcome
        except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as exc:
            waited = time.monotonic() - start
            if waited >= timeout_s:
                raise TopicError(
                    f"broker at {bootstrap} not reachable after {attempt} attempts "
                    f"in {waited:.1f} s: {type(exc).__name__}: {exc}"
                ) from None
            log.warning(
                "broker at %s not ready (attempt %d, %.1f s of %.0f s): %s; retrying",
                bootstrap,
                attempt,
                waited,
                timeout_s,
                exc,
            )
            await asyncio.sleep(min(interval_s, max(0.0, timeout_s - waited)))
        finally:
            # A never-started client may fail to close; there is nothing to release then.
            with contextlib.suppress(Exception):
                await admin.close()


def ensure_topics(
    bootstrap: str,
    spec: list[TopicSpec],
    *,
    timeout_s: float = 60.0,
    interval_s: float = 1.0,
) -> dict[str, str]:
    """Blocking ``ensure_topics_async`` (for the CLI and tests; not inside a running loop)."""
    return asyncio.run(
        ensure_topics_async(bootstrap, spec, timeout_s=timeout_s, interval_s=interval_s)
    )


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    out = []
    for entry in response.topic_errors:  # type: ignore[attr-defined]
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        out.append((name, code, message))
    return out
