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

- sustained load (``--sustained``): ``--instruments`` copies of the day (each under its own
  name, its event times shifted by 7.3 s per copy so window boundaries cut other events, the
  day replayed again after its end with fresh order ids once every resting order is deleted)
  fed at ``--rate`` events/s in all for ``--duration`` seconds through ONE worker with scoring
  on (``--generator``, ``--rollouts``, ``--executor``). Each instrument's event time runs at
  ``rate / instruments`` events/s, so the day's clock is compressed by the factor printed,
  and ``--window`` is in event time. The feeder sends every 50 ms one batch record per
  instrument with the events then due (a venue gateway's batching). Every 5 s it samples the
  worker's state page: consumer lag (events sent minus events the worker consumed, and
  seconds of feed that is), windows closed and decided, resident memory of the worker and of
  its scorer processes. Prints the maximum lag and the lag when the feed stops, windows
  decided against closed then and after ``--drain`` seconds more, and memory at the start
  and the end. ``--split`` runs an ingest worker and a scorer process instead of one worker.

Usage: ``python benchmarks/bench_stream.py [--data ZIP] [--batch 500] [--speed 300]
[--rollouts 16] [--skip-latency]``;
``python benchmarks/bench_stream.py --sustained [--instruments 100] [--rate 50000]
[--duration 600] [--window 25m] [--generator empirical] [--rollouts 3] [--drain 60]``
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


# ------------------------------------------------------------------ sustained load
def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory (MiB) of ``pid`` and of all its descendants together (Linux /proc)."""

    def rss(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def children(p: int) -> list[int]:
        out: list[int] = []
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                out += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        return out

    todo, kids = children(pid), 0.0
    while todo:
        child = todo.pop()
        kids += rss(child)
        todo += children(child)
    return rss(pid), kids


class VenueFeed:
    """``instruments`` copies of one day, paced in wall-clock time (see the module docstring).

    The day is extended by deleting every order left at its end, so it can be replayed again
    (order ids moved by 10**10 per replay, seq continuing) onto an empty book.
    """

    def __init__(self, frame: Any, instruments: int, rate: float, shift_s: float = 7.3) -> None:
        import numpy as np

        from simulator.normalized import iter_events
        from simulator.replay import FeedReplayer

        replayer = FeedReplayer()
        for e in iter_events(frame):
            replayer.apply_event(e)
        book = replayer.book
        last_ts = int(frame.ts_ns.iloc[-1])
        rows = list(
            zip(
                frame.kind.tolist(),
                frame.order_id.tolist(),
                frame.side.tolist(),
                frame.price.tolist(),
                frame.qty.tolist(),
                frame.synthetic.tolist(),
                strict=True,
            )
        )
        ts = frame.ts_ns.to_numpy(dtype=np.int64)
        closing = [
            ("delete", oid, "bid" if side > 0 else "ask", level.price, qty, True)
            for side in (1, -1)
            for level in book.iter_levels(side)
            for oid, qty in level.orders.items()
        ]
        rows += closing
        self.ts = np.concatenate([ts, np.full(len(closing), last_ts + 1, dtype=np.int64)])
        self.rows = rows
        self.n = len(rows)
        self.ts0 = int(self.ts[0])
        self.loop_ns = int(self.ts[-1] - self.ts[0]) + NS  # one replay of the day, in event time
        per_instrument = rate / instruments
        self.compression = per_instrument / (self.n / (self.loop_ns / NS))
        self.names = [f"I{k:03d}" for k in range(instruments)]
        self.shift_ns = [int(k * shift_s * NS) for k in range(instruments)]
        self.pos = [0] * instruments

    def due(self, k: int, horizon_ns: int) -> list[dict[str, Any]]:
        """Instrument ``k``'s events with event time <= ``horizon_ns`` not yet sent."""
        import numpy as np

        out: list[dict[str, Any]] = []
        name, target = self.names[k], horizon_ns - self.shift_ns[k]
        while True:
            loop, i = divmod(self.pos[k], self.n)
            j = int(np.searchsorted(self.ts, target - loop * self.loop_ns, side="right"))
            if j <= i:
                return out
            t_off, id_off, seq_off = (
                loop * self.loop_ns + self.shift_ns[k],
                loop * 10**10,
                loop * self.n,
            )
            for m in range(i, j):
                kind, oid, side, price, qty, synthetic = self.rows[m]
                out.append(
                    {
                        "ts_ns": int(self.ts[m]) + t_off,
                        "instrument": name,
                        "kind": kind,
                        "order_id": oid + id_off if oid > 0 else oid - id_off,
                        "side": side,
                        "price": price,
                        "qty": qty,
                        "seq": m + seq_off,
                        "synthetic": synthetic,
                    }
                )
            self.pos[k] = loop * self.n + j
            if j < self.n:
                return out


async def feed_sustained(
    feed: VenueFeed,
    *,
    bootstrap: str,
    topic: str,
    duration_s: float,
    sent: list[int],
    tick_s: float = 0.05,
) -> None:
    """Send the feed for ``duration_s``; ``sent`` = [events, records] so far (shared)."""
    from aiokafka import AIOKafkaProducer

    from streams.records import encode_batch

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, acks=1
    )
    await producer.start()
    pending: list[Any] = []
    start = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - start) < duration_s:
            horizon = feed.ts0 + int(elapsed * feed.compression * NS)
            for k, name in enumerate(feed.names):
                events = feed.due(k, horizon)
                for i in range(0, len(events), 500):
                    chunk = events[i : i + 500]
                    pending.append(
                        await producer.send(topic, encode_batch(chunk), key=name.encode())
                    )
                    sent[0] += len(chunk)
                    sent[1] += 1
            if len(pending) > 2000:
                await asyncio.gather(*pending)
                pending.clear()
            ahead = tick_s - (time.perf_counter() - start - elapsed)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()


def bench_sustained(bootstrap: str, frame: Any, workdir: Path, args: argparse.Namespace) -> None:
    from streams.broker import stop_process
    from surveillance.cli.demo import _get_state

    feed = VenueFeed(frame, args.instruments, args.rate)
    scoring = dict(
        SURV_GENERATOR=args.generator,
        SURV_ROLLOUTS=str(args.rollouts),
        SURV_WINDOW=args.window,
        SURV_EXECUTOR=args.executor,
        SURV_EXECUTOR_WORKERS=str(args.executor_workers),
        SURV_CALIBRATION="none",
    )
    env, names = deployment(bootstrap, workdir, **scoring)
    env.pop("SURV_SCORER", None)
    scorer = None
    if args.split:
        # one ingest worker, and the scoring in a scorer process of its own
        process, port = start_worker(env | {"SURV_ROLE": "ingest"}, workdir, "sustained")
        scorer = start_worker(env | {"SURV_ROLE": "scorer"}, workdir, "scorer")
    else:
        process, port = start_worker(env, workdir, "sustained")
    print(
        f"sustained: {args.instruments} instruments x {feed.n:,} events per day replay, "
        f"{args.rate:,.0f} events/s in all for {args.duration:g} s (each instrument's day "
        f"clock x{feed.compression:.1f}); window {args.window} of event time; "
        + ("one ingest worker and one scorer process (--split), " if args.split else "one worker, ")
        + f"scoring with {args.generator} x {args.rollouts} rollouts in "
        f"{args.executor_workers} {args.executor} executor(s)"
    )
    sent = [0, 0]
    samples: list[dict[str, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                state = _get_state(port)
            except OSError:
                state = None
            if state is not None and scorer is not None:
                try:
                    d = _get_state(scorer[1])["decisions"]
                except OSError:
                    state = None
                else:
                    # the worker's figures are the ingest worker's, "scorers" the scorer's
                    # process and its executor together
                    state["decisions"] = d
            if state is not None:
                c, d = state["counts"], state["decisions"]
                main_rss, kids_rss = rss_mib(process.pid)
                if scorer is not None:
                    kids_rss = sum(rss_mib(scorer[0].pid))
                samples.append(
                    {
                        "t": time.monotonic() - t0,
                        "sent": sent[0],
                        "lag": sent[0] - c.get("events", 0),
                        "closed": c.get("windows_closed", 0),
                        "decided": d.get("decisions", 0) + d.get("scoring_errors", 0),
                        "pending": d.get("pending", 0),
                        "rss": main_rss,
                        "rss_scorers": kids_rss,
                    }
                )
            stop.wait(5.0)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sampler.start()
        t_start = time.monotonic()
        asyncio.run(
            feed_sustained(
                feed, bootstrap=bootstrap, topic=names.events, duration_s=args.duration, sent=sent
            )
        )
        fed_s = time.monotonic() - t_start
        time.sleep(5.5)
        at_end = samples[-1]
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            last = samples[-1]
            if last["lag"] <= 0 and last["decided"] >= last["closed"] and not last["pending"]:
                break
            time.sleep(1.0)
        time.sleep(5.5)
        drained = samples[-1]
    finally:
        stop.set()
        sampler.join(10)
        # the worker drains pending windows for up to 30 s before it stops (OPERATIONS.md)
        stop_process(process, timeout_s=60, name="worker")
        if scorer is not None:
            stop_process(scorer[0], timeout_s=60, name="scorer")
    rate = sent[0] / fed_s
    first = samples[0]
    print(
        f"  fed {sent[0]:,} events in {sent[1]:,} records in {fed_s:.1f} s = {rate:,.0f} events/s"
    )
    max_lag = max(samples, key=lambda x: x["lag"])
    print(
        f"  consumer lag: max {max_lag['lag']:,.0f} events ({max_lag['lag'] / rate:.1f} s of "
        f"feed) at {max_lag['t']:.0f} s; when the feed stopped {at_end['lag']:,.0f} events "
        f"({at_end['lag'] / rate:.1f} s)"
    )
    print(
        f"  windows: {at_end['decided']:,} decided of {at_end['closed']:,} closed when the feed "
        f"stopped ({at_end['pending']:,} pending); {drained['decided']:,} of "
        f"{drained['closed']:,} after up to {args.drain:g} s more"
    )
    print(
        f"  resident memory: worker {first['rss']:,.0f} MiB at the start, "
        f"{at_end['rss']:,.0f} MiB at the end (max {max(x['rss'] for x in samples):,.0f}); "
        f"scorer processes {first['rss_scorers']:,.0f} -> {at_end['rss_scorers']:,.0f} MiB"
    )
    print("  samples (s, lag events, closed, decided, pending, worker MiB, scorers MiB):")
    for x in samples[:: max(1, len(samples) // 12)]:
        print(
            f"    {x['t']:5.0f} {x['lag']:>10,.0f} {x['closed']:>6,} {x['decided']:>6,} "
            f"{x['pending']:>5,} {x['rss']:>7,.0f} {x['rss_scorers']:>7,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=500, help="events per batch record")
    parser.add_argument("--speed", type=float, default=300.0, help="feed speed for latency")
    parser.add_argument("--latency-hours", type=float, default=2.0, help="market hours fed")
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--skip-latency", action="store_true")
    sustained = parser.add_argument_group("sustained load (--sustained)")
    sustained.add_argument("--sustained", action="store_true", help="run only this mode")
    sustained.add_argument("--instruments", type=int, default=100)
    sustained.add_argument("--rate", type=float, default=50_000.0, help="events/s in all")
    sustained.add_argument("--duration", type=float, default=600.0, help="seconds fed")
    sustained.add_argument("--window", default="25m", help="window length, event time")
    sustained.add_argument("--generator", default="empirical", choices=["empirical", "lmm"])
    sustained.add_argument("--executor", default="process", choices=["process", "thread"])
    sustained.add_argument("--executor-workers", type=int, default=1)
    sustained.add_argument("--drain", type=float, default=60.0, help="seconds to catch up")
    sustained.add_argument(
        "--split", action="store_true", help="an ingest worker and a scorer process instead"
    )
    args = parser.parse_args()
    if args.sustained and "--rollouts" not in sys.argv:
        args.rollouts = 3
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
        if args.sustained:
            bench_sustained(broker.bootstrap, frame, workdir, args)
            print(f"(logs in {workdir})")
            return
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
