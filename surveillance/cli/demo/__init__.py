"""The end-to-end demo behind ``surveillance demo``: one real day through the whole service.

``run_demo(DemoOptions(...))`` starts the embedded broker (tansu, memory storage), creates the
topics, starts a worker (``python -m surveillance.cli worker`` as a subprocess, so it is the
same program as in production), publishes the day (optionally with a manipulation campaign
injected) at an accelerated speed, waits until every window is decided, stops the worker with a
bounded wait, reads the alert topic back and cross-checks it with the SQL store, and stops the
broker. Everything it started is stopped in ``finally`` blocks (SIGTERM, bounded wait, SIGKILL).
``format_summary`` renders the ``DemoReport`` for a person.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.units import NS_PER_S
from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.publisher import publish_frame
from streams.settings import load_settings
from streams.topics import TopicNames, app_topic_specs, ensure_topics

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DAY = (
    ROOT.parent / "shared" / "data" / "lobster" / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
)
STATE_PATH = "/surveillance/state/"


class DemoError(RuntimeError):
    """The demo could not run (no data, the worker died, a step timed out)."""


@dataclass(slots=True)
class DemoOptions:
    path: Path = DEFAULT_DAY
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


def choose_generator(choice: str, device: str = "cpu") -> tuple[str, str]:
    """``(generator, note)``. ``auto``: the order model (the product's detector) when its
    checkpoint exists, on a GPU when there is one and on CPU otherwise; the empirical
    generator only when there is no checkpoint (it forecasts too poorly to catch spoofing:
    see the README's evaluation figures)."""
    from surveillance.cli.wiring import DEFAULT_MODEL

    if choice != "auto":
        return choice, ""
    where = DEFAULT_MODEL.relative_to(ROOT)
    if not DEFAULT_MODEL.exists():
        return (
            "empirical",
            f"no order-model checkpoint at {where}: falling back to the empirical generator "
            "(i.i.d. recent real flow)",
        )
    if device != "cpu" or _cuda():
        return "lmm", f"order model {where} on the GPU"
    return (
        "lmm",
        f"order model {where} on CPU ({scorer_processes()} scorer processes; the summary gives "
        "the seconds each window took); --generator empirical is faster but a poor detector",
    )


def scorer_processes() -> int:
    """Scorer processes the demo's worker runs on CPU: one per core, at most two."""
    return max(1, min(2, os.cpu_count() or 1))


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def load_day(options: DemoOptions) -> tuple[pd.DataFrame, str, dt.date | None, int]:
    """The day's normalized events (sliced, injected), instrument, date and grid origin."""
    from simulator.units import parse_clock
    from surveillance.replay import read_input

    if not options.path.exists():
        raise DemoError(f"no such file: {options.path}")
    item = read_input(options.path, options.fmt)
    frame = item.frame.assign(instrument=item.instrument)
    if options.until is not None:
        frame = frame[frame["ts_ns"] < parse_clock(options.until)]
    if options.max_events is not None:
        frame = frame.iloc[: options.max_events]
    if frame.empty:
        raise DemoError("no events left to publish (check --until / --max-events)")
    return frame.reset_index(drop=True), item.instrument, item.session_date, item.origin_ns


def inject_campaign(
    frame: pd.DataFrame, options: DemoOptions
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``options.inject`` inserted into the day at ``options.inject_at`` (default: mid-day)."""
    from simulator.manipulation import Campaign, Typology, inject
    from simulator.units import parse_clock, parse_duration

    if options.inject is None:
        raise DemoError("no campaign to inject")
    typology = Typology(options.inject)
    first, last = int(frame["ts_ns"].iloc[0]), int(frame["ts_ns"].iloc[-1])
    if options.inject_at is not None:
        start = parse_clock(options.inject_at)
    else:  # the middle of the fed slice, on a whole minute
        start = (first + last) // 2 // (60 * NS_PER_S) * (60 * NS_PER_S)
    end = min(start + parse_duration(options.inject_for), last)
    if not first <= start < end:
        raise DemoError(
            f"--at {options.inject_at} is outside the fed events ({_clock(first)}..{_clock(last)})"
        )
    campaign = Campaign(typology, start, end, intensity=options.intensity)
    result = inject(frame, campaign)
    return result.frame, {
        "typology": typology.value,
        "start_ns": start,
        "end_ns": end,
        "intensity": options.intensity,
        **result.stats.as_dict(),
    }


def _clock(ts_ns: int) -> str:
    s = ts_ns // NS_PER_S
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


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


def run_demo(options: DemoOptions, *, say: Callable[[str], None] = print) -> DemoReport:
    """Run the whole demo (see the module docstring); ``say`` gets the progress lines."""
    from alerts.store import AlertStore
    from surveillance.cli.wiring import make_scorer
    from surveillance.detection.settings import DetectionSettings

    started = time.monotonic()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="surv-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    generator, note = choose_generator(options.generator)
    notes = [note] if note else []
    if note:
        say(note)

    # The worker's window grid starts at the session open (09:30), which is where the offline
    # replay starts it for these files (their start time): the same windows, the same ids.
    frame, instrument, date, _origin_ns = load_day(options)
    injected = None
    if options.inject:
        frame, injected = inject_campaign(frame, options)
        say(
            f"injected {injected['typology']} {_clock(injected['start_ns'])}-"
            f"{_clock(injected['end_ns'])} (intensity {options.intensity:g}): "
            f"{injected['injected_events']:,} events"
        )

    # The calibration the worker will find, said up front (the worker logs it too).
    from simulator.units import parse_duration

    settings = DetectionSettings(
        window_ns=parse_duration(options.window),
        rollouts=options.rollouts,
        seed=options.seed,
        generator=generator,  # type: ignore[arg-type]
        calibration=options.calibration,
    )
    probe, resolved = make_scorer(settings)
    cal = resolved.calibration
    if cal is None:
        calibration = "none: windows are scored but cannot alert"
        say(f"no calibration for model {probe.model_version}: windows will be scored, never alert")
    else:
        calibration = (
            f"threshold {cal.threshold:.3f} at false-alarm rate {cal.far:g} ({cal.method})"
        )

    store_path = options.store.resolve()
    if store_path.exists():
        say(f"replacing the previous demo store {store_path}")
        store_path.unlink()
    store_url = f"sqlite:///{store_path}"
    prefix = f"demo{uuid.uuid4().hex[:6]}"
    names = TopicNames.for_prefix(prefix)

    broker = EmbeddedBroker(log_path=workdir / "tansu.log")
    worker: subprocess.Popen[bytes] | None = None
    worker_log = workdir / "worker.log"
    try:
        broker.start()
        assert broker.process is not None
        say(f"broker: tansu pid {broker.process.pid} on {broker.bootstrap} (memory storage)")
        settings = load_settings(
            bootstrap=broker.bootstrap, topic_prefix=prefix, app_id=f"surv-{prefix}", partitions=1
        )
        ensure_topics(broker.bootstrap, app_topic_specs(settings))
        port = free_port()
        env = dict(
            os.environ,
            SURV_BOOTSTRAP=broker.bootstrap,
            SURV_TOPIC_PREFIX=prefix,
            SURV_APP_ID=settings.app_id,
            SURV_PARTITIONS="1",
            SURV_STORE_URL=store_url,
            SURV_WEB_PORT=str(port),
            SURV_GENERATOR=generator,
            SURV_DEVICE="cuda" if generator == "lmm" and _cuda() else "cpu",
            SURV_ROLLOUTS=str(options.rollouts),
            SURV_WINDOW=options.window,
            SURV_SEED=str(options.seed),
            SURV_CALIBRATION=options.calibration,
            SURV_REBALANCE_TIMEOUT_S="6",
            **(
                {"SURV_EXECUTOR": "process", "SURV_EXECUTOR_WORKERS": str(scorer_processes())}
                if generator == "lmm" and not _cuda()
                else {}
            ),
            SURV_SESSION_TIMEOUT_S="10",
        )
        env.pop("SURV_SCORER", None)
        if date is not None:
            env["SURV_SESSION_DATE"] = date.isoformat()
        with worker_log.open("wb") as fh:
            worker = subprocess.Popen(
                [sys.executable, "-m", "surveillance.cli", "worker", "--no-create-topics"],
                cwd=ROOT,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        say(f"worker: pid {worker.pid}, joining the consumer group (log {worker_log})")
        wait_for_state(
            worker,
            port,
            lambda s: bool(s.get("ready")),
            timeout_s=120,
            what="partition assignment",
            log_path=worker_log,
        )
        speed = "max speed" if options.speed is None else f"{options.speed:g}x"
        say(
            f"feeding {instrument} {len(frame):,} events "
            f"{_clock(int(frame.ts_ns.iloc[0]))}-{_clock(int(frame.ts_ns.iloc[-1]))} at {speed}"
        )
        t0 = time.monotonic()
        report = asyncio.run(
            publish_frame(
                frame, bootstrap=broker.bootstrap, topic=names.events, speed=options.speed
            )
        )
        publish_s = time.monotonic() - t0

        said = [-1]

        def done(s: dict[str, Any]) -> bool:
            c, d = s["counts"], s["decisions"]
            decided = d.get("decisions", 0) + d.get("scoring_errors", 0)
            decided += d.get("windows_unscored", 0)
            if decided != said[0]:  # a progress line whenever another window is decided
                said[0] = decided
                say(
                    f"  {decided} of {c.get('windows_closed', 0)} closed windows decided, "
                    f"{d.get('alerts_published', 0)} alert(s) ({time.monotonic() - started:.0f} s)"
                )
            return (
                c.get("end_of_stream", 0) >= 1
                and not d.get("pending")
                and decided >= c.get("windows_closed", 0)
            )

        state = wait_for_state(
            worker,
            port,
            done,
            timeout_s=options.timeout_s,
            what="decision for every window",
            log_path=worker_log,
            progress=_progress,
        )
        code = stop_process(worker, timeout_s=20, name="worker")
        worker = None
        if code != 0:
            notes.append(f"worker exited with status {code}")
        records = asyncio.run(read_alert_topic(broker.bootstrap, names.alerts))
    finally:
        if worker is not None:
            stop_process(worker, timeout_s=20, name="worker")
        broker.stop()

    topic_ids = [json.loads(r.value)["alert_id"] for r in records]
    store = AlertStore(store_url)
    try:
        decisions = store.decisions()
        alerts = store.list(limit=10_000)
    finally:
        store.close()
    return DemoReport(
        instrument=instrument,
        date=date,
        path=options.path,
        events=report.events,
        first_ts_ns=int(frame.ts_ns.iloc[0]),
        last_ts_ns=int(frame.ts_ns.iloc[-1]),
        speed=options.speed,
        generator=generator,
        generator_note=note,
        model_version=probe.model_version,
        rollouts=options.rollouts,
        window=options.window,
        calibration=calibration,
        injected=injected,
        publish_s=publish_s,
        worker=state,
        decisions=decisions,
        alerts=alerts,
        topic_alerts=len(records),
        topic_alert_ids=len(set(topic_ids)),
        store=store_path,
        workdir=workdir,
        seconds=time.monotonic() - started,
        notes=notes,
        _topic_ids=topic_ids,
    )


def scoring_line(recent: list[dict[str, Any]]) -> str | None:
    """How long the scorer took per window (measured by the worker, ``recent_windows``): the
    simulation's cost on this machine, which sets how long the demo runs."""
    seconds = sorted(w["score_s"] for w in recent if w.get("score_s") is not None)
    if not seconds:
        return None
    return (
        f"scoring   {statistics.median(seconds):.1f} s per window (median of {len(seconds)}; slowest "
        f"{seconds[-1]:.1f} s), windows scored in parallel by the worker's scorer processes"
    )


def format_summary(r: DemoReport) -> str:
    """The human summary printed at the end of the demo."""
    counts, timing = r.worker["counts"], r.worker.get("timing", {})
    dead = r.worker.get("dead_letters", {})
    lines = [
        "",
        f"=== surveillance demo: {r.instrument} {r.date or ''} ({r.path.name}) ===",
        f"feed      {r.events:,} events {_clock(r.first_ts_ns)}-{_clock(r.last_ts_ns)} "
        f"published in {r.publish_s:.1f} s "
        f"({'max speed' if r.speed is None else f'{r.speed:g}x'})",
    ]
    if r.injected:
        i = r.injected
        lines.append(
            f"injected  {i['typology']} {_clock(i['start_ns'])}-{_clock(i['end_ns'])}, "
            f"intensity {i['intensity']:g}: {i['injected_events']:,} events, "
            f"{i['injected_orders']:,} orders"
        )
    rate = timing.get("events_per_s")
    lines += [
        f"scorer    {r.generator} generator ({r.model_version}), {r.rollouts} rollouts, "
        f"{r.window} windows; calibration: {r.calibration}",
        f"worker    {counts.get('events', 0):,} events consumed"
        + (
            f" at {rate:,.0f} events/s (first to last record; paced by the feed), "
            f"{timing.get('busy_s', 0):.1f} s of it in the core"
            if rate
            else ""
        )
        + f", dead letters: {sum(dead.values())}"
        + (f" {dead}" if dead else ""),
        f"windows   {len(r.decisions)} decided of {counts.get('windows_closed', 0)} closed, "
        f"{len(r.alerts)} alert(s)",
    ]
    if line := scoring_line(r.worker.get("recent_windows", [])):
        lines.append(line)
    alerted = {a["alert_id"] for a in r.alerts}
    lines.append("")
    lines.append(f"  {'window':<19} {'events':>7} {'score':>7}  alert")
    from alerts.schema import window_id

    for d in r.decisions:
        score = "-" if d["score"] is None else f"{d['score']:.2f}"
        wid = window_id(d["instrument"], d["window_start_ns"], d["window_end_ns"], r.model_version)
        mark = "ALERT" if wid in alerted else ""
        lines.append(
            f"  {_clock(d['window_start_ns'])}-{_clock(d['window_end_ns'])} "
            f"{d['n_events']:>7,} {score:>7}  {mark}"
        )
    for a in r.alerts:
        w = a["window"]
        top = ", ".join(
            f"{f['name']} {f['overlap']:.2f} (expected {f['expected']:.2f})"
            if f.get("expected") is not None
            else f"{f['name']} {f['overlap']:.2f}"
            for f in a["facts"][:3]
        )
        lines += [
            "",
            f"ALERT {a['alert_id']}",
            f"  {a['instrument']} window {_clock(w['start_ns'])}-{_clock(w['end_ns'])} "
            f"({w['start']} .. {w['end']})",
            f"  score {a['score']:.3f} (threshold {a['threshold']:.3f}), severity "
            f"{a['severity']}, p-value "
            f"{'-' if a['p_value'] is None else format(a['p_value'], '.3g')}",
            f"  diverged facts: {', '.join(a['diverged_facts']) or 'none'}",
            f"  lowest overlaps: {top}",
        ]
    if r.injected:
        i = r.injected
        hit = [
            d
            for d in r.decisions
            if d["window_start_ns"] < i["end_ns"] and d["window_end_ns"] > i["start_ns"]
        ]
        for d in hit:
            wid = window_id(
                d["instrument"], d["window_start_ns"], d["window_end_ns"], r.model_version
            )
            score = "no score" if d["score"] is None else f"score {d['score']:.2f}"
            verdict = "ALERT" if wid in alerted else "no alert: not detected by this model"
            lines.append(
                f"injected window {_clock(d['window_start_ns'])}-{_clock(d['window_end_ns'])}: "
                f"{score} -> {verdict}"
            )
    check = "OK" if r.consistent else "MISMATCH"
    lines += [
        "",
        f"alert topic  {r.topic_alerts} message(s), {r.topic_alert_ids} distinct alert id(s); "
        f"store {len(r.alerts)} alert(s): {check}",
        f"stored in    {r.store} (tables alerts, window_decisions)",
        f"logs in      {r.workdir}",
        f"done in {r.seconds:.0f} s; broker and worker stopped",
    ]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)
