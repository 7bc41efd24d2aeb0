"""The simulation check (``scoring.simulation_check``) over every cached fork of a model and day.

For each window whose forks the fork cache holds (the windows of ``--spans``: ``HH:MM-HH:MM/M``,
one every M minutes), the real window is replayed and its orders and median spread are set
against the rollouts'. Printed: how many windows, how many off, the range of both ratios, and
each window off with its figures. Nothing is forked.

Usage: ``python benchmarks/simulation_check.py --data DAY.zip --sim-cache DIR [--model PATH]
--spans 10:00-14:05/5 14:30-15:35/5`` (16 rollouts, seed 0: the benchmark's forks).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from simulator.trajectory import trajectory_from_events
from simulator.units import NS_PER_MIN
from surveillance.cli.wiring import SamplerSpec
from surveillance.detection.metrics import window_facts
from surveillance.detection.pipeline import ClosedWindow
from surveillance.detection.scoring import Simulation, simulation_check
from surveillance.detection.settings import DetectionSettings
from surveillance.studies import simcache

# the benchmark's own day reader, so the windows are the ones ``surveillance evaluate`` forked
from surveillance.studies.evaluate import _Day
from surveillance.studies.simcache import SimCache

CLOSE_NS = 16 * 60 * NS_PER_MIN


def starts_of(spans: list[str]) -> list[int]:
    """``HH:MM-HH:MM/M`` -> window starts, every M minutes from the first to the second."""

    def at(clock: str) -> int:
        hh, mm = clock.split(":")
        return (int(hh) * 60 + int(mm)) * NS_PER_MIN

    out: list[int] = []
    for span in spans:
        first, rest = span.split("-")
        last, every = rest.split("/")
        out += range(at(first), at(last) + 1, int(every) * NS_PER_MIN)
    return sorted(set(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LOBSTER day (zip)")
    parser.add_argument("--sim-cache", required=True)
    parser.add_argument("--model", default=None, help="the checkpoint (default: the bundled)")
    parser.add_argument("--spans", nargs="+", default=["09:35-15:35/5"])
    args = parser.parse_args()
    settings = DetectionSettings(rollouts=16, seed=0, model=args.model)
    spec = SamplerSpec.of(settings)
    day = _Day(args.data)
    det = replace(settings.config(), tick_size=day.meta.tick_size, price_scale=day.meta.price_scale)
    starts = starts_of(args.spans)
    day.books_at(starts)
    cache = SimCache(args.sim_cache)
    checks = []
    for s in starts:
        end = min(s + det.window_ns, CLOSE_NS)
        # the window as the benchmark forked it: what its fork is keyed by
        window = ClosedWindow(
            day.instrument,
            s,
            end,
            day.book(s),
            (),
            "event",
            open_mid=day.open_mid,
            feed_depth=day.meta.feed_depth,
        )
        key = simcache.window_key(window, det, spec.model_version)
        sims = cache.load(key)
        if sims is None:
            continue
        real = trajectory_from_events(day.book(s), day.slice(s, end), s, end, det.tick_size)
        simulation = Simulation.of(sims, det, None, day.meta.feed_depth)
        checks.append((s, simulation_check(real, window_facts(real), simulation)))
    if not checks:
        raise SystemExit(f"no cached forks of {spec.model_version} for these windows")
    off = [(s, c) for s, c in checks if not c["faithful"]]
    orders = [c["order_ratio"] for _, c in checks]
    spreads = [c["spread_ratio"] for _, c in checks if c["spread_ratio"] is not None]
    print(
        f"{spec.model_version} on {day.instrument} (level {day.meta.feed_depth}): "
        f"{len(checks)} windows, {len(off)} off; order ratio {min(orders):.2f} to "
        f"{max(orders):.2f}; spread ratio {min(spreads):.2f} to {max(spreads):.2f}"
    )
    for s, c in off:
        clock = f"{s // NS_PER_MIN // 60:02d}:{s // NS_PER_MIN % 60:02d}"
        print(
            f"  off {clock} {','.join(c['off'])}: {c['orders_per_rollout']:.0f} orders per "
            f"rollout against {c['real_orders']}, median spread "
            f"{c['spread_ticks']['rollouts']} against {c['spread_ticks']['real']} ticks"
        )


if __name__ == "__main__":
    main()
