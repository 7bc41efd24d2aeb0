"""What an investigator needs to see why a window scored as it did: the spread distributions
and the price path against the rollouts' fan."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.trajectory import Trajectory
from simulator.units import NS_PER_S
from surveillance.detection.detector import FactSamples

PATH_STEP_NS = 10 * NS_PER_S


def _spread_pmf(samples: tuple[np.ndarray, np.ndarray | None]) -> dict[str, list]:
    values, weights = samples
    if len(values) == 0:
        return {"ticks": [], "weight": []}
    w = np.ones(len(values)) if weights is None else weights
    ticks, inverse = np.unique(values, return_inverse=True)
    mass = np.bincount(inverse, weights=w)
    mass = mass / mass.sum()
    return {"ticks": ticks.astype(int).tolist(), "weight": [round(float(x), 6) for x in mass]}


def evidence(
    real: Trajectory,
    real_facts: FactSamples,
    sims: Sequence[Trajectory],
    sim_facts: Sequence[FactSamples],
    price_scale: int,
) -> dict[str, object]:
    """What an investigator needs to see why a window scored as it did."""
    pooled = (
        np.concatenate([f["spread_time_weighted"][0] for f in sim_facts]),
        np.concatenate([f["spread_time_weighted"][1] for f in sim_facts]),  # type: ignore[misc]
    )
    grid = np.arange(real.start_ns, real.end_ns + 1, PATH_STEP_NS, dtype=np.int64)
    t_s = ((grid - real.start_ns) / NS_PER_S).round(1).tolist()
    real_mid = real.mid_at(grid) / price_scale
    paths = np.vstack([s.mid_at(grid) for s in sims]) / price_scale
    with np.errstate(all="ignore"):
        q = np.nanquantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)

    def clean(a: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else round(float(x), 4) for x in a]

    return {
        "spread_real": _spread_pmf(real_facts["spread_time_weighted"]),
        "spread_sim": _spread_pmf(pooled),  # type: ignore[arg-type]
        "price_real": {"t_s": t_s, "mid": clean(real_mid)},
        "price_fan": {
            "t_s": t_s,
            **{k: clean(q[i]) for i, k in enumerate(("q05", "q25", "q50", "q75", "q95"))},
        },
    }
