"""Capacity: how many GOOG-sized instruments one core scores in real time when every
instrument's window closes at the same moment and all of them are forked as one batched call.

The shared GOOG level-10 day is fed through the worker's windowing (``InstrumentPipeline``)
under ``--shifts`` window grids shifted by a fraction of the window, so their books and
contexts differ; ``--instruments`` instruments take those windows in turn under their own names
(so their seeds, hence their rollouts, differ too). Every instrument's window is then scored on
the worker's scoring path, ``SimulationScorer.score_batch`` (one ``Engine.fork`` over all the
windows: one model step per generated order for all rollouts at once, then each window's
facts, null and score).

Prints one labeled figure per line:

- ``load``: the machine's load average before and after (the figures are from a shared
  machine: read them with it);
- ``instruments_per_core``: instruments whose window one core scores within the window's own
  length (``instruments * window / CPU seconds`` of the call; the wall-clock figure beside
  it), the capacity figure (goal: >= 150 at 16 rollouts of 25 minutes, GOOG-sized flow);
- ``orders_per_s``: generated orders per second of the whole call;
- ``shares``: where the wall time went: the generator's ``next_orders`` (of which the model's
  step and draw), the rest of the fork (rollout books, matching, recording), and scoring
  (facts of every rollout, the null, the score);
- ``model_gflops``: the model step's floating-point rate (operations counted by torch's
  ``FlopCounterMode`` on one step, times the rows stepped, over the time in the model) against
  ``peak_gflops``, a large float32 matrix product on the same threads (the physical limit);
- with ``--alone K``: the first K windows scored one by one as today's worker does
  (``SimulationScorer.__call__``), and whether their scores equal the batched ones.

Usage: ``python benchmarks/bench_capacity.py [--instruments 8] [--rollouts 16] [--window-min 25]
[--at 12:30] [--shifts 4] [--generator lmm|empirical] [--device cpu] [--threads 1]
[--max-batch N] [--alone K] [--profile]``. A quick run: ``--instruments 4 --window-min 5``.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import time
from pathlib import Path

from simulator.units import NS_PER_S, parse_clock
from surveillance.datasets import data_path
from surveillance.detection.pipeline import ClosedWindow, InstrumentPipeline
from surveillance.detection.settings import DetectionSettings

DEFAULT_DATA = "lobster-goog-10"  # the data registry's name (surveillance.datasets)


def shifted_windows(
    path: Path, window_ns: int, at_ns: int, shifts: int, tick_size: int
) -> list[ClosedWindow]:
    """One closed window per grid shift: the first window starting at or after ``at_ns`` on
    the day's window grid moved by ``k * window / shifts``."""
    from surveillance.replay import _events, read_input

    item = read_input(path, "lobster")
    events = list(_events(item))
    out = []
    for k in range(shifts):
        origin = item.origin_ns + k * window_ns // shifts
        pipe = InstrumentPipeline(
            f"{item.instrument}-grid{k}", window_ns=window_ns, origin_ns=origin, tick_size=tick_size
        )
        found = None
        for e in events:
            for w in pipe.on_event(e):
                if w.start_ns >= at_ns and w.history:
                    found = w
            if found is not None:
                break
        if found is None:
            raise SystemExit(f"no window starts after {at_ns / 3.6e12:.2f} h on grid {k}")
        out.append(found)
    return out


def matmul_peak_gflops(device: str, n: int = 2048, runs: int = 3) -> float:
    """Best float32 ``n x n`` matrix-product rate on the current threads."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(runs):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def step_flops_per_row(generator, rows: int = 64) -> float:
    """Floating-point operations of one model step and token draw, per row (FlopCounterMode,
    on a full cache: the attention reads every slot)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models.model import KVCache
    from models.tokenizer import LOB_DIM, TOD_DIM

    model = generator.model
    dev = generator.device
    cache = KVCache(model.cfg, rows, dev)
    cache.positions = torch.full((rows,), model.cfg.block_size, dtype=torch.long, device=dev)
    lob_dim = model.lob_proj.in_features if hasattr(model, "lob_proj") else LOB_DIM
    ids = torch.zeros(rows, dtype=torch.long, device=dev)
    x = (ids, torch.rand(rows, lob_dim, device=dev), ids, torch.rand(rows, TOD_DIM, device=dev))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        h = model.step(cache, *x)
        u = torch.rand(rows, 4, device=dev)
        model.sample(h, generator.temperature, uniforms=u, top_p=generator.top_p)
    return counter.get_total_flops() / rows


class Timers:
    """Wall time and calls of the wrapped callables (the generator's and the model's)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.rows: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner, name: str, label: str, rows_of) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
            self.rows[label] = self.rows.get(label, 0) + rows_of(args)
            self.calls[label] = self.calls.get(label, 0) + 1
            return out

        setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="registry name or LOBSTER zip")
    ap.add_argument("--instruments", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=16)
    ap.add_argument("--window-min", type=float, default=25.0)
    ap.add_argument("--at", default="12:30", help="windows start at or after this time")
    ap.add_argument("--shifts", type=int, default=4, help="distinct window grids (books)")
    ap.add_argument("--generator", choices=("lmm", "empirical"), default="lmm")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=None)
    ap.add_argument("--alone", type=int, default=0, help="also score K windows one by one")
    ap.add_argument("--profile", action="store_true", help="print the top functions by time")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    path = Path(args.data) if Path(args.data).exists() else data_path(args.data)
    window_ns = int(args.window_min * 60 * NS_PER_S)
    settings = DetectionSettings(
        window_ns=window_ns,
        rollouts=args.rollouts,
        generator=args.generator,
        device=args.device,
    )
    from surveillance.cli.wiring import make_scorer

    scorer, _ = make_scorer(settings)
    config = scorer.config
    t0 = time.perf_counter()
    grids = shifted_windows(
        path, window_ns, parse_clock(args.at), max(1, args.shifts), config.tick_size
    )
    windows = [
        dataclasses.replace(grids[k % len(grids)], instrument=f"GOOG{k:04d}")
        for k in range(args.instruments)
    ]
    prep_s = time.perf_counter() - t0
    real_orders = sum(len(w.events) for w in grids) / len(grids)

    sampler = scorer.sampler()  # one per spec per process: the one score_batch forks with
    timers = Timers()
    timers.wrap(sampler, "next_orders", "next_orders", lambda a: len(a[0]))
    model = getattr(sampler, "model", None)
    if model is not None:
        timers.wrap(model, "step", "model_step", lambda a: int(a[1].shape[0]))
        timers.wrap(model, "sample", "model_sample", lambda a: int(a[0].shape[0]))
    from simulator import engine as engine_module

    fork_s = [0.0]
    inner_fork = engine_module.Engine.fork

    def timed_fork(self, requests):
        t = time.perf_counter()
        out = inner_fork(self, requests)
        fork_s[0] += time.perf_counter() - t
        return out

    engine_module.Engine.fork = timed_fork  # type: ignore[method-assign]
    profiler = cProfile.Profile() if args.profile else None
    t0, c0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    scores = scorer.score_batch(windows, max_batch=args.max_batch)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine_module.Engine.fork = inner_fork  # type: ignore[method-assign]
    load1 = os.getloadavg()

    window_s = window_ns / NS_PER_S
    orders = timers.rows.get("next_orders", 0)
    gen_s = timers.seconds.get("next_orders", 0.0)
    model_s = timers.seconds.get("model_step", 0.0) + timers.seconds.get("model_sample", 0.0)
    print(f"device: {args.device} threads: {args.threads} generator: {args.generator}")
    print(f"load: {load0[0]:.2f} before, {load1[0]:.2f} after (1-minute load average)")
    print(
        f"instruments: {args.instruments} rollouts: {args.rollouts} window_min: {args.window_min}"
        f" grids: {len(grids)} real_orders_per_window: {real_orders:.0f}"
    )
    print(f"prepare_s: {prep_s:.1f}")
    print(f"scored: {sum(s.score is not None for s in scores)} of {len(scores)} windows")
    print(f"wall_s: {wall:.1f} cpu_s: {cpu:.1f}")
    # per core: the process's CPU time (on a shared machine the wall clock also counts the
    # time other processes held the core); the wall-clock figure beside it
    print(
        f"instruments_per_core: {args.instruments * window_s / cpu:.1f}"
        f" (wall clock: {args.instruments * window_s / wall / args.threads:.1f})"
    )
    print(f"generated_orders: {orders} orders_per_s: {orders / wall:.0f}")
    print(
        f"shares: next_orders {gen_s / wall:.1%} (model step+draw {model_s / wall:.1%}),"
        f" rest of fork {(fork_s[0] - gen_s) / wall:.1%}, scoring {(wall - fork_s[0]) / wall:.1%}"
    )
    if model is not None:
        rows = timers.rows.get("model_step", 0)
        per_row = step_flops_per_row(sampler)
        rate = per_row * rows / model_s / 1e9
        peak = matmul_peak_gflops(args.device)
        print(
            f"model_rows_stepped: {rows} (live {orders}) flops_per_row_step: {per_row:.0f}"
            f" steps: {timers.calls.get('model_step', 0)}"
            f" mean_rows: {rows / max(1, timers.calls.get('model_step', 1)):.0f}"
        )
        print(f"model_gflops: {rate:.2f} peak_gflops: {peak:.1f} share_of_peak: {rate / peak:.2%}")
    if args.alone:
        k = min(args.alone, len(windows))
        t0, c0 = time.perf_counter(), time.process_time()
        alone = [scorer(w) for w in windows[:k]]
        alone_s, alone_cpu = time.perf_counter() - t0, time.process_time() - c0
        same = all(
            a.score == b.score and dict(a.facts) == dict(b.facts)
            for a, b in zip(alone, scores[:k], strict=True)
        )
        print(f"alone_s_per_window: {alone_s / k:.1f} cpu_s: {alone_cpu / k:.1f} over {k}")
        print(
            f"alone_instruments_per_core: {window_s / (alone_cpu / k):.1f}"
            f" (wall clock: {window_s / (alone_s / k) / args.threads:.1f})"
        )
        print(f"alone_equals_batched: {same}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
