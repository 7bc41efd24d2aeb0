"""The scorer role: closed windows in (``{prefix}.windows``), decisions and alerts out.

Ingest workers (``worker --role ingest``) keep books and windows and publish every closed window
(``streams.windows``). Scorer processes (``worker --role scorer``) are one Kafka consumer group,
``{app_id}-scorers``: Kafka spreads the windows topic's partitions over however many scorers run
and moves them when one joins, leaves or dies; there is no scheduler of ours.

Each poll brings at most ``SURV_SCORE_BATCH`` window records; they are decoded and scored as one
batch (``Decisions.decide``: one ``Engine.fork`` for all their rollouts), their alerts published
and their decisions stored, and only then are the offsets committed. A scorer that dies loses
nothing: its uncommitted windows go to the next owner, which skips those already in the store
(the window id is deterministic), so each decision is stored once; an alert published just
before the kill and not yet stored may be published twice (the alert topic is at least once).

Plain aiokafka rather than faust: the loop is poll, score, commit, and the commit must wait for
the batch, which faust's acking of a ``take`` batch does not promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from alerts.store import AlertStore
from simulator.types import Instrument
from streams.app import STATE_PATH, Decisions
from streams.records import dead_letter
from streams.settings import StreamSettings
from streams.topics import TopicNames
from streams.windows import WindowRecordError, decode_window_record
from surveillance.detection.pipeline import ClosedWindow, WindowScorer

log = logging.getLogger(__name__)


class _ProducerTopic:
    """What ``Decisions`` needs of a topic (``send``), on a plain aiokafka producer."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer, self.topic = producer, topic

    async def send(self, *, key: bytes, value: bytes) -> None:
        await self.producer.send_and_wait(self.topic, value, key=key)


class ScorerService:
    """One scorer process: its consumer, producer, ``Decisions`` and state page."""

    def __init__(
        self,
        settings: StreamSettings,
        scorer: WindowScorer,
        store: AlertStore | None,
        scorer_factory: Callable[[Instrument], WindowScorer] | None = None,
    ) -> None:
        self.settings = settings
        # venue metadata the window records carried: their windows get their venue's scorer
        self.instruments: dict[str, Instrument] = {}
        self.scorer_factory = scorer_factory
        self.names = TopicNames.for_prefix(settings.topic_prefix)
        self.scorer = scorer
        self.store = store
        self.counts: Counter[str] = Counter()
        self.assignment: list[tuple[str, int]] = []
        self.decisions: Decisions | None = None
        self.stopping = asyncio.Event()
        self.started_at = time.time()

    def state(self) -> dict[str, Any]:
        d = self.decisions
        return {
            "role": "scorer",
            "ready": bool(self.assignment),
            "assignment": sorted([t, p] for t, p in self.assignment),
            "counts": dict(self.counts),
            "decisions": (dict(d.counts) | {"pending": d.pending}) if d else {},
            "recent_windows": list(d.recent) if d else [],
        }

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.abc import ConsumerRebalanceListener

        s = self.settings
        service = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                service.assignment = []
                # another scorer may decide these instruments' windows now: their cold-start
                # states are read from the store again when next needed
                if service.decisions is not None:
                    service.decisions.cold.states.clear()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                service.assignment = [(tp.topic, tp.partition) for tp in assigned]
                log.info("scorer partitions assigned: %s", sorted(service.assignment))

        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=s.scorer_group,
            client_id=f"{s.app_id}-scorer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=s.max_window_bytes,
            fetch_max_bytes=max(s.max_window_bytes, 52_428_800),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
            # A batch of LMM windows can score for minutes between polls: the group must not
            # take the partitions away meanwhile (heartbeats run on their own).
            max_poll_interval_ms=int(s.scorer_max_poll_s * 1000),
        )
        producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, client_id=f"{s.app_id}-scorer")
        await producer.start()
        await consumer.start()
        consumer.subscribe([self.names.windows], listener=Listener())
        self.decisions = Decisions(
            settings=s,
            scorer=self.scorer,
            store=self.store,
            alerts_topic=_ProducerTopic(producer, self.names.alerts),
            scorer_factory=self.scorer_factory,
            instruments=self.instruments,
            quality_topic=_ProducerTopic(producer, self.names.quality),
            decisions_topic=_ProducerTopic(producer, self.names.decisions),
        )
        web = await self._start_web() if s.web_enabled else None
        try:
            while not self.stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=s.score_batch)
                records = [r for rs in batches.values() for r in rs]
                if not records:
                    continue
                await self._score(records, producer)
                try:
                    await consumer.commit()
                except Exception as exc:  # revoked meanwhile: the next owner skips what we stored
                    self.counts["commit_failures"] += 1
                    log.warning(
                        "commit after a batch failed (%s); records will be redelivered", exc
                    )
        finally:
            if web is not None:
                await web.cleanup()
            with contextlib.suppress(Exception):
                await consumer.stop()  # leaves the group: the others take over at once
            with contextlib.suppress(Exception):
                await producer.stop()
            self.decisions.close()

    async def _score(self, records: list[Any], producer: Any) -> None:
        self.counts["records"] += len(records)
        windows: list[ClosedWindow] = []
        closed_at = min(r.timestamp for r in records) / 1000.0
        for r in records:
            try:
                window, meta = await asyncio.to_thread(decode_window_record, r.value)
                if meta is not None:
                    self.instruments[window.instrument] = meta
                windows.append(window)
            except WindowRecordError as exc:
                self.counts["dead_letters"] += 1
                letter = dead_letter(
                    key=r.key,
                    value=r.value,
                    reason=exc.reason,
                    detail=exc.detail,
                    topic=r.topic,
                    partition=r.partition,
                    offset=r.offset,
                )
                await producer.send_and_wait(self.names.dead_letter, letter, key=r.key)
        self.counts["windows"] += len(windows)
        assert self.decisions is not None
        if windows:
            await self.decisions.decide_by_scorer(windows, closed_at=closed_at)

    async def _start_web(self) -> Any:
        from aiohttp import web

        async def state(request: Any) -> Any:
            return web.json_response(self.state())

        app = web.Application()
        app.router.add_get(STATE_PATH, state)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, self.settings.web_host, self.settings.web_port).start()
        return runner


def run_scorer(
    settings: StreamSettings,
    scorer: WindowScorer,
    store: AlertStore | None,
    scorer_factory: Callable[[Instrument], WindowScorer] | None = None,
) -> None:
    """Run a scorer process until SIGTERM / SIGINT (blocking): the batch being scored is
    finished, stored and committed first."""
    service = ScorerService(settings, scorer, store, scorer_factory)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stopping.set)
        await service.run()

    asyncio.run(main())
