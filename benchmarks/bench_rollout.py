"""Rollout throughput: generated orders/s (order model + clearing house) for 32 rollouts forked
from the real GOOG level-10 book at 14:30 (the held-out period), and the model's size.

Prints one labeled figure per line (best of ``--runs``; the machine is shared, so the best run is
the least disturbed one):

- ``rollout``: generated orders/s over all rollouts, generation and matching together
  (target >= 10,000 on a 2-core CPU);
- ``generator share``: the part of that time spent in the generator's ``next_orders`` (book
  features, the model step, sampling, decoding), the rest being the clearing house and the
  rollout engine;
- ``params``: the order model's parameter count;
- ``cpu``: the processor and the vector instructions torch uses on it. The figure depends on
  them: the same code measured 10,168 orders/s on an earlier 2-core development machine and
  about 3,600 on a 2-core AMD EPYC with AVX2 only (2026-12-02), where a batched model step
  alone takes 3.1 to 3.5 ms per 32 orders (``python -m models.bench``).

The order model comes from ``models.generator.load_generator`` (``--model``, default
``models/checkpoints/lmm-small.pt``). Without a checkpoint (or with ``--generator empirical``) it
measures the empirical baseline generator instead and says so: that figure is the engine's and
the clearing house's cost alone.

torch runs on one intra-op thread by default (``--threads``): the model is small, a step is a
few small matrix products, and on a shared 2-core machine more threads oversubscribe the cores
(measured with an untrained lmm-small-sized model while another job trained: 1,466 orders/s
with torch's default 2 threads, 8,391 with 1).

Usage: ``python benchmarks/bench_rollout.py [--data ZIP] [--rollouts 32] [--orders 2000]
[--runs 3] [--generator lmm|empirical] [--model PATH] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from simulator.dayforks import FeedTape
from simulator.engine import Engine, ForkRequest
from simulator.lobster import load_lobster
from simulator.matching import MatchingRules
from simulator.orderstream import from_lobster
from simulator.rollout import RolloutSummary
from simulator.units import parse_clock

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "lobster-goog-10"  # the data registry's name (surveillance.datasets)
DEFAULT_MODEL = ROOT / "models" / "checkpoints" / "lmm-small.pt"


def param_count(generator: object) -> int | None:
    """The generator's parameter count, wherever it exposes it."""
    for holder in (generator, getattr(generator, "model", None)):
        if holder is None:
            continue
        for name in ("num_params", "param_count", "n_params"):
            value = getattr(holder, name, None)
            if callable(value):
                value = value()
            if isinstance(value, int):
                return value
        params = getattr(holder, "parameters", None)
        if callable(params):
            return sum(p.numel() for p in params())
    return None


class TimedGenerator:
    """Wraps a generator and adds up the seconds spent in its ``next_orders``."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.seconds = 0.0

    def begin(self, *args, **kwargs) -> None:
        self.inner.begin(*args, **kwargs)  # type: ignore[attr-defined]

    def next_orders(self, books, ts_ns):
        t0 = time.perf_counter()
        try:
            return self.inner.next_orders(books, ts_ns)  # type: ignore[attr-defined]
        finally:
            self.seconds += time.perf_counter() - t0


def cpu_description() -> str:
    """The processor's model name (Linux) and torch's CPU capability, where available."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        name += f", torch {torch.backends.cpu.get_cpu_capability()}"
    except (ImportError, AttributeError):
        pass
    return f"{name}, {os.cpu_count()} cores"


def load(kind: str, model: Path, threads: int) -> tuple[object, str]:
    """The product's sampler (``surveillance.cli.wiring.SamplerSpec``) and its model version;
    the empirical generator when there is no checkpoint."""
    from surveillance.cli.wiring import SamplerSpec

    if kind == "lmm" and not model.exists():
        print(f"note: no checkpoint at {model}; measuring the empirical generator instead")
        kind = "empirical"
    spec = SamplerSpec(kind, (str(model),) if kind == "lmm" else (), threads=threads)
    return spec(), spec.model_version


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--rollouts", type=int, default=32)
    ap.add_argument(
        "--orders",
        type=int,
        default=2000,
        help="orders per rollout per run (a 25-minute GOOG window has ~8,000; fewer lets the "
        "one-off context encoding weigh in)",
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--start", default="14:30")
    ap.add_argument("--generator", choices=["lmm", "empirical"], default="lmm")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = ap.parse_args()
    if args.data is None:
        from surveillance.datasets import data_path

        args.data = data_path(DEFAULT_DATA)
    if not args.data.exists():
        print(f"error: no data at {args.data}", file=sys.stderr)
        return 2

    day = load_lobster(args.data)
    stream = from_lobster(day)
    start_ns = parse_clock(args.start)
    i0 = int(np.searchsorted(stream.ts_ns, start_ns))
    book = FeedTape(day).advance_to(int(stream.source_row[i0]))
    c0 = int(np.searchsorted(stream.ts_ns, start_ns - 30 * 60 * 10**9))
    history = stream.take(slice(c0, i0))
    rows = day.orderbook[np.maximum(history.source_row - 1, 0)]
    open_mid = (float(day.orderbook[0, 0]) + float(day.orderbook[0, 2])) / 2
    rules = MatchingRules.from_instrument(day.instrument)
    generator, name = load(args.generator, args.model, args.threads)

    best, share = 0.0, 0.0
    for run in range(args.runs):
        timed = TimedGenerator(generator)
        t0 = time.perf_counter()
        (futures,) = Engine(timed).fork(  # type: ignore[arg-type]
            [
                ForkRequest(
                    instrument=day.symbol,
                    book=book,
                    context=history,
                    context_rows=rows,
                    open_mid=open_mid,
                    start_ns=start_ns,
                    horizon_ns=3_600 * 10**9,
                    rollouts=args.rollouts,
                    seed=run,
                    rules=rules,
                    max_orders=args.orders,
                    max_depth=day.levels,
                )
            ]
        )
        results = futures.results
        seconds = time.perf_counter() - t0
        orders = RolloutSummary.of(results).orders
        if orders / seconds > best:
            best, share = orders / seconds, timed.seconds / seconds
    print(
        f"generator: {name}"
        + (f" (torch threads: {args.threads})" if name != "empirical-v1" else "")
    )
    print(f"rollout: {best:,.0f} generated orders/s ({args.rollouts} rollouts, target >= 10,000)")
    print(f"generator share: {share:.0%} of the time")
    count = param_count(generator)
    print(f"params: {count:,}" if count is not None else "params: n/a (no model)")
    print(f"cpu: {cpu_description()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
