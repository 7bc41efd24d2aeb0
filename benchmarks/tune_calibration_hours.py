"""The calibrated detector on the calibration hours, with campaigns of their own (issue 31).

Facts and scores are chosen on the calibration hours, never on the held-out windows: this
script scores the windows of the calibration span (10:00 to 14:05) against their cached forks:
the normal windows on the calibration grid (``--calibration-stride``, default every 5 minutes,
the benchmark's default), and the windows every 25 minutes clean and with every typology
injected at each intensity, with campaign seeds salted apart from the benchmark's
(``--campaign-seed``). Each of those windows is scored with a calibration fitted on the normal
windows that do not overlap it (``Calibration.fit_normal``, as ``surveillance evaluate`` fits
one). Printed per instrument, typology and intensity: the calibrated score's AUC (manipulated
against clean windows of the instrument) and its TPR at the fold's threshold, and the clean
windows alerting, for the reference (the detector's facts; with ``--scenarios``, its
``SCENARIOS`` too) and for a variant of it (``--without FACTS``: some facts left out;
``--no-scenarios``: the omnibus score alone): the comparison a candidate is adopted or dropped
by.

Usage: ``python benchmarks/tune_calibration_hours.py --sim-cache DIR --scenarios --no-scenarios``
(forks are only read: a window whose fork is not cached is left out, never forked;
``--out FILE`` keeps the scored windows, ``--scores FILE`` compares again from them).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from simulator.units import NS_PER_MIN, parse_duration
from surveillance.cli.wiring import SamplerSpec
from surveillance.detection.detector import SCENARIOS, Calibration
from surveillance.detection.settings import DetectionSettings
from surveillance.studies.evaluate import EvaluationConfig, VariantScore, evaluate_day, roc_auc
from surveillance.studies.simcache import SimCache

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lobster"
DAYS = ("LOBSTER_SampleFile_GOOG_2012-06-21_10.zip", "LOBSTER_SampleFile_AMZN_2012-06-21_5.zip")
Key = tuple[str, str, str]


def fold_scores(
    normal: Sequence[VariantScore],
    results: Sequence[VariantScore],
    facts: set[str],
    scenarios: Mapping[str, Sequence[str]],
    far: float,
) -> list[tuple[float | None, bool]]:
    """Each result's calibrated score and alert under a calibration fitted on the ``normal``
    windows that do not overlap its window (over ``facts`` only, with ``scenarios``)."""
    out: list[tuple[float | None, bool]] = []
    fits: dict[tuple[str, int], Calibration] = {}
    for r in results:
        key = (r.instrument, r.window_start_ns)
        end = r.end_ns or r.window_start_ns
        if key not in fits:
            kept = [
                c
                for c in normal
                if c.instrument != r.instrument
                or (c.end_ns or c.window_start_ns) <= r.window_start_ns
                or c.window_start_ns >= end
            ]
            fits[key] = Calibration.fit_normal(
                [
                    (c.instrument, c.scores["simulation_uncalibrated"], _only(c.fact_z, facts))
                    for c in kept
                ],
                far=far,
                method="the calibration windows apart from the one scored",
                spans=[(c.window_start_ns, c.end_ns or c.window_start_ns) for c in kept],
                scenarios=scenarios,
            )
        cal = fits[key]
        s = cal.score(r.scores["simulation_uncalibrated"], _only(r.fact_z, facts), r.instrument)
        out.append((s, cal.is_alert(s)))
    return out


def _only(fact_z: Mapping[str, float | None], facts: set[str]) -> dict[str, float | None]:
    return {f: z for f, z in fact_z.items() if f in facts}


def table(
    results: Sequence[VariantScore], scored: Sequence[tuple[float | None, bool]]
) -> dict[Key, tuple[float | None, float]]:
    """(instrument, typology, intensity) -> (AUC against the instrument's clean windows, TPR)."""
    out: dict[Key, tuple[float | None, float]] = {}
    for inst, variant, level in sorted(
        {(r.instrument, r.variant, r.intensity or "") for r in results}
    ):
        if variant == "clean":
            continue
        mine = [(r, s) for r, s in zip(results, scored, strict=True) if r.instrument == inst]
        neg = [s for r, (s, _) in mine if r.variant == "clean"]
        pos = [(s, a) for r, (s, a) in mine if r.variant == variant and r.intensity == level]
        auc = roc_auc(neg, [s for s, _ in pos])  # type: ignore[arg-type]
        out[(inst, variant, level)] = (auc, float(np.mean([a for _, a in pos])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-cache", required=True, help="the calibration forks' cache")
    parser.add_argument("--data", nargs="*", default=[str(SHARED / d) for d in DAYS])
    parser.add_argument("--without", default="", help="facts the variant leaves out")
    parser.add_argument("--scenarios", action="store_true", help="the reference fits scenarios")
    parser.add_argument("--no-scenarios", action="store_true", help="the variant: omnibus only")
    parser.add_argument("--campaign-seed", type=int, default=7)
    parser.add_argument("--intensities", default="0.25,low,moderate,high")
    parser.add_argument("--far", type=float, default=0.05)
    parser.add_argument(
        "--calibration-stride", default="5m", help="the normal windows' grid (10:00-14:05)"
    )
    parser.add_argument("--out", default=None, help="write every window's fact z here (JSON)")
    parser.add_argument("--scores", default=None, help="read them from an earlier --out")
    args = parser.parse_args()
    settings = DetectionSettings(rollouts=16, seed=0)
    spec = SamplerSpec.of(settings)
    config = EvaluationConfig(
        detection=settings.config(),
        start_ns=10 * 60 * NS_PER_MIN,
        end_ns=(14 * 60 + 30) * NS_PER_MIN,
        stride_ns=25 * NS_PER_MIN,
        intensities=tuple(x.strip() for x in args.intensities.split(",")),
        campaign_seed=args.campaign_seed,
        cached_only=True,
        calibration_start_ns=10 * 60 * NS_PER_MIN,
        calibration_stride_ns=parse_duration(args.calibration_stride),
    )
    normal: list[VariantScore] = []
    results: list[VariantScore] = []
    if args.scores:
        saved = json.loads(Path(args.scores).read_text())
        normal = [VariantScore(**r) for r in saved["normal"]]
        results = [VariantScore(**r) for r in saved["results"]]
    else:
        cache, generator = SimCache(args.sim_cache), spec()
        # the normal windows are the calibration span's, which ends where the evaluated
        # windows would start (after 14:05 here)
        spans = replace(config, start_ns=(14 * 60 + 30) * NS_PER_MIN)
        for path in args.data:
            for phase, out in ((True, normal), (False, results)):
                out += evaluate_day(
                    path,
                    generator,
                    spans if phase else config,
                    calibration=phase,
                    cache=cache,
                    generator_version=spec.model_version,
                )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "normal": [r.as_dict() for r in normal],
                    "results": [r.as_dict() for r in results],
                }
            )
        )
    facts = set(config.detection.facts)
    dropped = {f.strip() for f in args.without.split(",") if f.strip()}
    reference = SCENARIOS if args.scenarios else {}
    variant_scored = fold_scores(
        normal, results, facts - dropped, {} if args.no_scenarios else reference, args.far
    )
    configured_scored = fold_scores(normal, results, facts, reference, args.far)
    variant, configured = table(results, variant_scored), table(results, configured_scored)
    clean = {
        i: sum(r.variant == "clean" and r.instrument == i for r in results) for i, *_ in variant
    }
    what = ", ".join([*(["no scenarios"] if args.no_scenarios else []), *sorted(dropped)])
    ref = "with scenarios" if args.scenarios else "the detector's facts"
    print(f"clean windows {clean}; AUC / TPR, variant ({what or 'the same'}) -> reference ({ref})")
    for key in sorted(configured):
        (a, ta), (b, tb) = variant[key], configured[key]
        print(f"  {key[0]:<6}{key[1]:<20}{key[2]:<10}{_f(a)} / {ta:.2f} -> {_f(b)} / {tb:.2f}")
    for name, scored in (("variant", variant_scored), ("reference", configured_scored)):
        for inst in sorted(clean):
            alerts = [
                a
                for r, (_, a) in zip(results, scored, strict=True)
                if r.variant == "clean" and r.instrument == inst
            ]
            print(f"  {name}: {inst} clean windows alerting {sum(alerts)} of {len(alerts)}")
    for level in config.intensities:
        for name, t in (("variant", variant), ("reference", configured)):
            aucs = [v[0] for k, v in t.items() if k[2] == level and v[0] is not None]
            tprs = [v[1] for k, v in t.items() if k[2] == level]
            if aucs:
                print(
                    f"  {level} {name}: mean AUC {np.mean(aucs):.3f}, min {min(aucs):.3f}, "
                    f"mean TPR {np.mean(tprs):.2f}"
                )


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


if __name__ == "__main__":
    main()
