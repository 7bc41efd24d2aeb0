"""The sweep facts' counts on real windows, clean and with injected campaigns (issue 31).

The order model's rollouts almost never sweep, so the z of ``sweep_ratio``, ``sweep_bursts``
and ``sweep_pressure`` against the simulation is, to within a sample or two, minus the real
window's count beyond the fact's cut. This script measures those counts without forking: per
window, clean and with each campaign, then per typology and scale the AUC of the counts of the
manipulated windows against the clean ones (docs/studies/aggressive-manipulation.md).

- ``--seeds tune``: the tuning campaigns of the study (calibration hours, seeds salted
  ``tune|instrument|start|typology|scale``); ``--seeds benchmark``: the campaigns ``surveillance
  evaluate`` injects (campaign seed 0, intensity labels as given).

Usage: ``python benchmarks/sweep_fact_counts.py --data ZIP --span 10:00-14:00 --every 15m
--seeds tune --intensities 0.25,0.5,1`` (held out: ``--span 14:30-15:35 --every 5m --seeds
benchmark --intensities 0.25,low,moderate,high``).
"""

from __future__ import annotations

import argparse
import json
import zlib

import numpy as np

from simulator.manipulation import Campaign, Typology
from simulator.normalized import iter_events
from simulator.trajectory import trajectory_from_events
from simulator.units import NS_PER_MIN, parse_clock, parse_duration
from surveillance.detection.metrics import TAIL_FACTS, window_facts
from surveillance.studies.evaluate import (
    _campaign_seed,
    _Day,
    campaign_units,
    intensity_scale,
    roc_auc,
)

FACTS = ("sweep_ratio", "sweep_bursts", "sweep_pressure")
WINDOW_NS = 25 * NS_PER_MIN


def counts(trajectory) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Each sweep fact's samples beyond its fixed cut in one window."""
    facts = window_facts(trajectory)
    return {f: int((facts[f][0] > TAIL_FACTS[f].at).sum()) for f in FACTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a LOBSTER zip")
    parser.add_argument("--span", default="10:00-14:00", help="first-last window start")
    parser.add_argument("--every", default="15m")
    parser.add_argument("--seeds", choices=("tune", "benchmark"), default="tune")
    parser.add_argument("--intensities", default="0.25,0.5,1")
    parser.add_argument("--typologies", default="all")
    parser.add_argument("--out", default=None, help="write every window's counts here (JSON)")
    args = parser.parse_args()
    first, last = (parse_clock(x) for x in args.span.split("-"))
    starts = list(range(first, last + 1, parse_duration(args.every)))
    labels = [x.strip() for x in args.intensities.split(",")]
    kinds = (
        list(Typology)
        if args.typologies == "all"
        else [Typology(t.strip()) for t in args.typologies.split(",")]
    )
    day = _Day(args.data)
    tick, lot = campaign_units(day.meta)
    day.books_at(starts)
    rows: list[tuple[int, str, str | None, dict[str, int]]] = []
    for s in starts:
        end = s + WINDOW_NS
        real = trajectory_from_events(day.book(s), day.slice(s, end), s, end, day.meta.tick_size)
        rows.append((s, "clean", None, counts(real)))
        for typology in kinds:
            for label in labels:
                scale = intensity_scale(label)
                if args.seeds == "tune":
                    text = f"tune|{day.instrument}|{s}|{typology}|{scale}"
                    seed = zlib.crc32(text.encode())
                else:
                    seed = _campaign_seed(0, 0, day.instrument, s, typology, label)
                campaign = Campaign(
                    typology, s + NS_PER_MIN, end - NS_PER_MIN, scale, seed=seed, tick=tick, lot=lot
                )
                injected = day.inject(s, end, campaign)
                events = list(iter_events(injected.frame))
                t = trajectory_from_events(day.book(s), events, s, end, day.meta.tick_size)
                rows.append((s, typology.value, label, counts(t)))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh)
    clean = [r[3] for r in rows if r[1] == "clean"]
    print(f"{day.instrument}: {len(clean)} clean windows")
    for f in FACTS:
        print(f"  clean {f}: {sorted(c[f] for c in clean)}")
    for typology in kinds:
        for label in labels:
            pos = [r[3] for r in rows if r[1] == typology.value and r[2] == label]
            cells = "  ".join(
                f"{f} {roc_auc([c[f] for c in clean], [p[f] for p in pos]):.2f} "
                f"(median {np.median([p[f] for p in pos]):.0f})"
                for f in FACTS
            )
            print(f"  {typology.value:<20}{label:<9}{cells}")


if __name__ == "__main__":
    main()
