"""The demo's orchestration: the generator chosen, the broker and the worker started, the day
fed, every window waited for, everything stopped, and the report assembled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.publisher import publish_frame
from streams.settings import load_settings
from streams.topics import TopicNames, app_topic_specs, ensure_topics
from surveillance.cli.demo.base import DEFAULT_DAY, ROOT, DemoError, DemoOptions, DemoReport, _clock
from surveillance.cli.demo.day import inject_campaign, load_day
from surveillance.cli.demo.watch import _progress, read_alert_topic, wait_for_state


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


def run_demo(options: DemoOptions, *, say: Callable[[str], None] = print) -> DemoReport:
    """Run the whole demo (see the module docstring); ``say`` gets the progress lines."""
    from alerts.store import AlertStore
    from surveillance.cli.wiring import make_scorer
    from surveillance.detection.settings import DetectionSettings

    started = time.monotonic()
    if options.path is None:
        from surveillance.datasets import DataUnavailable, data_path

        try:
            options.path = data_path(DEFAULT_DAY)
        except DataUnavailable as exc:
            raise DemoError(str(exc)) from None
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="surv-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    generator, note = choose_generator(options.generator)
    notes = [note] if note else []
    if note:
        say(note)

    # The worker's window grid starts at the session open (09:30), which is where the offline
    # replay starts it for these files (their start time): the same windows, the same ids.
    frame, instrument, date, _origin_ns, meta = load_day(options)
    injected = None
    if options.inject:
        frame, injected = inject_campaign(frame, options, meta)
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
                frame,
                bootstrap=broker.bootstrap,
                topic=names.events,
                speed=options.speed,
                # the venue's tick and calendar travel with the feed, as `surveillance feed`
                instruments={instrument: meta} if meta is not None else None,
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
