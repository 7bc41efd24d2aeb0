"""Stream worker throughput and close-to-alert latency through the real (embedded) broker.

Each figure runs a real ``surveillance worker`` subprocess against the embedded tansu broker
(memory storage) on this machine, with the publisher's default batch records
(``streams.records``: up to 500 events of one instrument per Kafka record).

- ingest: the whole GOOG level-10 day is published first, then ONE worker is started with
  ``SURV_SCORER=none`` (windows still close on event time and their real stylized facts are
  computed, but no rollouts run). Events/s from the first to the last record the worker
  consumed (its state page). Target >= 50,000 events/s.
- close-to-alert latency: the day is fed paced (``--speed``), with 5-minute windows, and a
  consumer of the alert topic notes when each alert arrives. Latency = arrival on the alert
  topic minus the moment the worker consumed the event that closed the window (both wall
  clock, same machine). Run twice:
  (1) an *instant test scorer* (no rollouts, alerts on every window: the plumbing alone:
      executor hand-off, alert build and validation, Kafka produce, consumer fetch);
  (2) the real ``SimulationScorer`` (empirical generator, ``--rollouts``), with a calibration
      that alerts on every window; printed in total, the worker-measured scoring time
      (rollouts + detection), the wait for a free scorer (at ``--speed`` windows can close
      faster than one scorer decides them), and from the scoring's end to the alert's
      arrival on the topic: what the target (< 2 s once the rollouts are done) is about.

Usage: ``python benchmarks/bench_stream.py [--data ZIP] [--batch 500] [--speed 300]
[--rollouts 16] [--skip-latency]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "lobster-goog-10"  # the data registry's name (surveillance.datasets)
NS = 1_000_000_000


class InstantTestScorer:
    """Not a market score: alerts on every window at once (the plumbing's latency)."""

    model_version = "bench-instant-test-scorer"

    def __call__(self, window: Any) -> Any:
        from surveillance.detection.pipeline import WindowScore

        return WindowScore(
            score=1.0,
            p_value=0.5,
            alert=True,
            facts={"spread": 0.5},
            diverged=("spread",),
            expected={"spread": 0.9},
            threshold=0.0,
            severity="low",
        )


def instant_scorer(settings: Any) -> InstantTestScorer:
    """``SURV_SCORER=benchmarks.bench_stream:instant_scorer``."""
    return InstantTestScorer()


def start_worker(env: dict[str, str], workdir: Path, name: str) -> tuple[subprocess.Popen, int]:
    from streams.broker import free_port
    from surveillance.cli.demo import wait_for_state

    port = free_port()
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "surveillance.cli", "worker", "--no-create-topics"],
            cwd=ROOT,
            env=env | {"SURV_WEB_PORT": str(port)},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    wait_for_state(
        process,
        port,
        lambda s: bool(s["ready"]),
        timeout_s=120,
        what="assignment",
        log_path=log_path,
    )
    return process, port


def deployment(bootstrap: str, workdir: Path, **extra: str) -> tuple[dict[str, str], Any]:
    from streams.settings import load_settings
    from streams.topics import TopicNames, app_topic_specs, ensure_topics

    prefix = f"bench{uuid.uuid4().hex[:6]}"
    settings = load_settings(
        bootstrap=bootstrap, topic_prefix=prefix, app_id=f"surv-{prefix}", partitions=1
    )
    ensure_topics(bootstrap, app_topic_specs(settings))
    env = dict(
        os.environ,
        SURV_BOOTSTRAP=bootstrap,
        SURV_TOPIC_PREFIX=prefix,
        SURV_APP_ID=settings.app_id,
        SURV_PARTITIONS="1",
        SURV_STORE_URL=f"sqlite:///{workdir / (prefix + '.db')}",
        SURV_SESSION_DATE="2012-06-21",
        SURV_REBALANCE_TIMEOUT_S="6",
        SURV_SESSION_TIMEOUT_S="10",
        SURV_LOG_LEVEL="warning",
        **extra,
    )
    return env, TopicNames.for_prefix(prefix)


def bench_ingest(bootstrap: str, frame: Any, workdir: Path, batch: int) -> None:
    from streams.broker import stop_process
    from streams.publisher import publish_frame
    from surveillance.cli.demo import _get_state

    env, names = deployment(bootstrap, workdir, SURV_SCORER="none")
    report = asyncio.run(
        publish_frame(frame, bootstrap=bootstrap, topic=names.events, batch_events=batch)
    )
    process, port = start_worker(env, workdir, "ingest")
    try:
        deadline = time.monotonic() + 600
        while True:
            state = _get_state(port)
            if state["counts"].get("end_of_stream"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("ingest: the worker did not finish within 600 s")
            time.sleep(0.2)
    finally:
        stop_process(process, timeout_s=20, name="worker")
    t = state["timing"]
    span = t["last_record_at"] - t["first_record_at"]
    print(
        f"ingest, one worker, SURV_SCORER=none (windows close, no rollouts): "
        f"{state['counts']['events']:,} events in {report.records:,} records "
        f"(batch {batch}) in {span:.2f} s = {t['events_per_s']:,.0f} events/s "
        f"(first to last record consumed; target >= 50,000); in the core: {t['busy_s']:.2f} s"
    )


class AlertWatcher(threading.Thread):
    """Consumes the alert topic and notes each alert's arrival (wall clock)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.arrivals: dict[tuple[str, int], float] = {}
        self.stop_flag = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self.ready.set()
            while not self.stop_flag.is_set():
                for records in (await consumer.getmany(*tps, timeout_ms=50)).values():
                    now = time.time()
                    for r in records:
                        alert = json.loads(r.value)
                        key = (alert["instrument"], alert["window"]["start_ns"])
                        self.arrivals.setdefault(key, now)
        finally:
            await consumer.stop()


def bench_latency(
    bootstrap: str, frame: Any, workdir: Path, label: str, speed: float, **extra: str
) -> None:
    from streams.broker import stop_process
    from streams.publisher import publish_frame
    from surveillance.cli.demo import wait_for_state

    env, names = deployment(bootstrap, workdir, SURV_WINDOW="5m", **extra)
    process, port = start_worker(env, workdir, "latency")
    watcher = AlertWatcher(bootstrap, names.alerts)
    watcher.start()
    watcher.ready.wait(30)
    try:
        asyncio.run(publish_frame(frame, bootstrap=bootstrap, topic=names.events, speed=speed))
        state = wait_for_state(
            process,
            port,
            lambda s: s["counts"].get("end_of_stream") == 1 and not s["decisions"]["pending"],
            timeout_s=300,
            what="end of stream",
            log_path=workdir / "latency.log",
        )
        time.sleep(1.0)  # the last alerts reach the watcher
    finally:
        watcher.stop_flag.set()
        stop_process(process, timeout_s=20, name="worker")
    watcher.join(10)
    total, excl, score, queued = [], [], [], []
    for w in state["recent_windows"]:
        # Windows closed by end of stream are not "closed by an event"; left out.
        arrived = watcher.arrivals.get((w["instrument"], w["start_ns"]))
        if arrived is None or not w["alert"]:
            continue
        total.append(arrived - w["closed_at"])
        score.append(w["score_s"])
        excl.append(arrived - w["scored_at"])  # from the rollouts being done to the topic
        queued.append(max(0.0, w["scored_at"] - w["score_s"] - w["closed_at"]))
    if not total:
        print(f"close-to-alert, {label}: no alerts observed")
        return

    def fmt(xs: list[float]) -> str:
        xs = sorted(xs)
        p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
        return f"median {statistics.median(xs) * 1e3:,.0f} ms, p95 {p95 * 1e3:,.0f} ms, max {xs[-1] * 1e3:,.0f} ms"

    print(f"close-to-alert, {label}, {len(total)} windows at {speed:g}x: total {fmt(total)}")
    if any(s > 0.001 for s in score):
        print(f"    of which scoring (rollouts + detection, in the executor): {fmt(score)}")
        print(f"    waiting for a free scorer before that: {fmt(queued)}")
        print(f"    from the rollouts done to the alert on the topic: {fmt(excl)} (target < 2 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=500, help="events per batch record")
    parser.add_argument("--speed", type=float, default=300.0, help="feed speed for latency")
    parser.add_argument("--latency-hours", type=float, default=2.0, help="market hours fed")
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if args.data is None:
        from surveillance.datasets import data_path

        args.data = data_path(DEFAULT_DATA)

    from streams.broker import EmbeddedBroker
    from surveillance.detection.detector import Calibration
    from surveillance.replay import read_input

    item = read_input(args.data, "lobster")
    frame = item.frame.assign(instrument=item.instrument)
    workdir = Path(tempfile.mkdtemp(prefix="surv-bench-"))
    with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
        bench_ingest(broker.bootstrap, frame, workdir, args.batch)
        if args.skip_latency:
            return
        head = frame[frame.ts_ns < item.origin_ns + int(args.latency_hours * 3600) * NS]
        bench_latency(
            broker.bootstrap,
            head,
            workdir,
            "instant test scorer (no rollouts, plumbing only)",
            args.speed,
            SURV_SCORER="benchmarks.bench_stream:instant_scorer",
        )
        cal = Calibration.fit([-1e9], far=0.5, method="bench: alert on every window")
        cal.model_version = "empirical-v1"
        cal.save(workdir / "alert-all.json")
        bench_latency(
            broker.bootstrap,
            head,
            workdir,
            f"SimulationScorer empirical, {args.rollouts} rollouts, 5m windows",
            args.speed,
            SURV_GENERATOR="empirical",
            SURV_ROLLOUTS=str(args.rollouts),
            SURV_CALIBRATION=str(workdir / "alert-all.json"),
        )
    print(f"(logs in {workdir})")


if __name__ == "__main__":
    main()
