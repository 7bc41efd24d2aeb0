"""The MarS counterfactual on the calibration hours (issue 31): does the simulated market answer
a window's aggressive orders as the real one did?

For each window (the calibration hours' 25-minute grid by default), clean and with each
aggressive typology injected at one intensity (campaign seeds salted apart from the
benchmark's, as ``tune_calibration_hours.py``), the window's aggressive orders are read off
the real feed and replayed in rollouts forked at its start
(``surveillance.studies.counterfactual``). Per window, for every aggressive order and for the
sweeps alone (orders priced at least a tick past the other side's best), at 1, 5 and 30
seconds: the real market's mean signed mid response, the rollouts' mean response to the same
orders, and their z (real minus the rollouts' mean, over the rollouts' spread). Printed: the
AUC of each statistic, campaign windows against the instrument's clean windows (above 0.5:
higher under the campaign; below: lower).

Usage: ``python benchmarks/counterfactual_response.py --data DAY.zip --jobs 2 --out FILE``
(one fork per window and variant, about a minute of one core each with 8 rollouts;
``--scores FILE`` prints the table again from an earlier ``--out``).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from simulator.engine import Engine
from simulator.manipulation import Campaign, Typology
from simulator.normalized import iter_events
from simulator.trajectory import trajectory_from_events
from simulator.units import NS_PER_MIN
from surveillance.cli.wiring import SamplerSpec
from surveillance.detection.pipeline import ClosedWindow
from surveillance.detection.settings import DetectionSettings
from surveillance.studies.counterfactual import (
    aggressive_orders,
    counterfactual_request,
    signed_response,
    touch_shares,
)

# the benchmark's own day reader and campaign seeds, so the campaigns are the ones
# ``surveillance evaluate`` would inject with the same salt
from surveillance.studies.evaluate import (
    _campaign_seed,
    _Day,
    campaign_units,
    intensity_scale,
    roc_auc,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
DAY = "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip"
AGGRESSIVE = ("pump_and_dump", "marking_the_close", "momentum_ignition")
# 0: the events at the order's own time (what the order itself did to the touch)
HORIZONS_S = (0, 1, 5, 30)


def run_windows(
    path: str,
    starts: list[int],
    typologies: list[str],
    level: str,
    salt: int,
    rollouts: int,
    see_agents: bool = True,
    sized_to_book: bool = False,
) -> list[dict]:
    """Every window of ``starts`` clean and with each typology: its replayed orders, the real
    responses and each rollout's (``see_agents`` False: the order model reads the replayed
    orders only through the book, as before it took them as tokens; ``sized_to_book``: each
    replayed order takes the share of the rollout's book the real one took of the real book,
    ``touch_shares``)."""
    settings = DetectionSettings(rollouts=rollouts, seed=0)
    day = _Day(path)
    det = replace(settings.config(), tick_size=day.meta.tick_size, price_scale=day.meta.price_scale)
    width = det.window_ns
    day.books_at(sorted(set(starts) | {s - width for s in starts}))
    tick, lot = campaign_units(day.meta)
    engine = Engine(replace(SamplerSpec.of(settings), see_agents=see_agents)())
    out = []
    for s in starts:
        end = s + width
        window = ClosedWindow(
            day.instrument,
            s,
            end,
            day.book(s),
            tuple(day.slice(s, end)),
            "event",
            history=tuple(day.slice(s - width, s)),
            history_book=day.book(s - width),
            open_mid=day.open_mid,
            feed_depth=day.meta.feed_depth,
        )
        for variant in ["clean", *typologies]:
            events = list(window.events)
            if variant != "clean":
                typology = Typology(variant)
                campaign = Campaign(
                    typology,
                    s + NS_PER_MIN,
                    end - NS_PER_MIN,
                    intensity_scale(level),
                    seed=_campaign_seed(salt, det.seed, day.instrument, s, typology, level),
                    tick=tick,
                    lot=lot,
                )
                injected = day.inject(s, end, campaign)
                events = list(iter_events(injected.frame))
            real = trajectory_from_events(day.book(s), events, s, end, det.tick_size)
            orders = aggressive_orders(real)
            shares = touch_shares(real) if sized_to_book else None
            request = counterfactual_request(
                replace(window, events=tuple(events)), det, orders, shares
            )
            (futures,) = engine.fork([request])
            out.append(
                {
                    "instrument": day.instrument,
                    "start": s,
                    "variant": variant,
                    "ticks": [o[2] for o in orders],
                    "real": {str(h): signed_response(real, orders, h).tolist() for h in HORIZONS_S},
                    "sims": [
                        {str(h): signed_response(t, orders, h).tolist() for h in HORIZONS_S}
                        for t in futures.trajectories
                    ],
                }
            )
            print(
                f"{day.instrument} {s // NS_PER_MIN // 60:02d}:{s // NS_PER_MIN % 60:02d} "
                f"{variant}: {len(orders)} aggressive orders",
                flush=True,
            )
    return out


def statistics(record: dict, sweeps: bool) -> dict[str, float]:
    """One window's statistics over its aggressive orders (``sweeps``: only those priced past
    the other side's best)."""
    keep = np.array([t >= 1 for t in record["ticks"]], dtype=bool) if sweeps else slice(None)
    out = {"count": float(np.sum(keep) if sweeps else len(record["ticks"]))}
    for h in (h for h in HORIZONS_S if str(h) in record["real"]):  # older runs lack 0 s
        real = float(np.nanmean(np.asarray(record["real"][str(h)], float)[keep]))
        sims = np.array([np.nanmean(np.asarray(s[str(h)], float)[keep]) for s in record["sims"]])
        out[f"real {h}s"] = real
        out[f"sim {h}s"] = float(sims.mean())
        # a floor under the spread: the rollouts can agree closely on a few orders
        out[f"z {h}s"] = (real - float(sims.mean())) / max(float(sims.std(ddof=1)), 0.05)
    return out


def table(records: list[dict]) -> None:
    print("mean signed response in ticks, real / rollouts, every aggressive order and sweeps only")
    means: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in records:
        means.setdefault((r["instrument"], r["variant"]), []).append(statistics(r, False))
        means[(r["instrument"], r["variant"])][-1].update(
            {f"sweep {k}": v for k, v in statistics(r, True).items()}
        )
    for (inst, variant), stats in sorted(means.items()):
        cells = []
        for pre in ("", "sweep "):
            for h in (h for h in HORIZONS_S if f"{pre}real {h}s" in stats[0]):
                real = np.nanmean([x[f"{pre}real {h}s"] for x in stats])
                sim = np.nanmean([x[f"{pre}sim {h}s"] for x in stats])
                cells.append(f"{pre}{h}s {real:.2f}/{sim:.2f}")
        print(f"  {inst:<5} {variant:<18} n={len(stats):<3} " + "  ".join(cells))
    for sweeps in (False, True):
        rows: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in records:
            rows.setdefault((r["instrument"], r["variant"]), []).append(statistics(r, sweeps))
        print("sweeps only" if sweeps else "every aggressive order")
        for (inst, variant), stats in sorted(rows.items()):
            clean = rows.get((inst, "clean"))
            if variant == "clean" or not clean:
                continue
            cells = [f"{k} {_auc(clean, stats, k)}" for k in stats[0]]
            print(f"  {inst:<5} {variant:<18} n={len(stats):<3} " + "  ".join(cells))


def _auc(clean: list[dict[str, float]], campaign: list[dict[str, float]], key: str) -> str:
    """AUC over the windows where the statistic exists (a window without sweeps has no
    sweep response)."""
    neg = [c[key] for c in clean if np.isfinite(c[key])]
    pos = [x[key] for x in campaign if np.isfinite(x[key])]
    auc = roc_auc(neg, pos) if neg and pos else None
    return "  -  " if auc is None else f"{auc:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", default=[str(SHARED / DAY)])
    parser.add_argument("--start", default="10:00", help="first window (HH:MM)")
    parser.add_argument("--windows", type=int, default=10, help="windows, 25 minutes apart")
    parser.add_argument("--typologies", default=",".join(AGGRESSIVE))
    parser.add_argument("--intensity", default="moderate")
    parser.add_argument("--campaign-seed", type=int, default=7)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=None, help="write every window's responses here")
    parser.add_argument("--scores", default=None, help="read them from an earlier --out")
    parser.add_argument(
        "--sized-to-book",
        action="store_true",
        help="replay each order as the share of the rollout's book the real one took of the "
        "real book (all of the touch, where it took all), not at its real size",
    )
    parser.add_argument(
        "--blind-agents",
        action="store_true",
        help="the order model reads the replayed orders only through the book (the old way)",
    )
    args = parser.parse_args()
    if args.scores:
        table(json.loads(Path(args.scores).read_text()))
        return
    hh, mm = (int(x) for x in args.start.split(":"))
    starts = [(hh * 60 + mm + 25 * k) * NS_PER_MIN for k in range(args.windows)]
    typologies = [t.strip() for t in args.typologies.split(",") if t.strip()]
    jobs = max(1, args.jobs)
    tasks = [(path, starts[k::jobs]) for path in args.data for k in range(jobs) if starts[k::jobs]]
    common = (
        typologies,
        args.intensity,
        args.campaign_seed,
        args.rollouts,
        not args.blind_agents,
        args.sized_to_book,
    )
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = pool.map(run_windows, *zip(*[(p, s, *common) for p, s in tasks], strict=True))
        records = [r for part in parts for r in part]
    if args.out:
        Path(args.out).write_text(json.dumps(records))
    table(records)


if __name__ == "__main__":
    main()
