"""Stylized facts of order flow and the overlap coefficient between their distributions.

The paper scores realism (App. J, Table 7) and anomalies (Sec. 4.2, App. G) by the *overlap
coefficient* ("Distribution Similarity") between the distribution of a stylized fact in the real
market and in the simulation: ``OVL = integral of min(f, g)``, 1 for identical distributions,
0 for disjoint ones.

Estimators
----------
- ``overlap_discrete``: exact overlap of two empirical pmfs, ``sum_k min(p_k, q_k)`` (optionally
  weighted, e.g. by time). Used for the spread in ticks.
- ``overlap_continuous``: overlap of two Gaussian kernel density estimates, each with its own
  Silverman bandwidth, evaluated on one shared grid (robust range, step <= bandwidth / 4) by
  linear binning and FFT convolution (so it costs O(n + grid log grid) even for 10^6 samples);
  values beyond the 0.1%/99.9% pooled quantiles are compared as tail masses. KDE rather than a shared
  histogram because a histogram's overlap depends on the bin edges and drops with sample size
  even for identical distributions (every empty-vs-filled bin counts as disagreement); the KDE
  estimate is smooth and close to the analytic value: for N(0,1) vs N(d,1) it matches
  ``2 * Phi(-|d| / 2)`` within 0.02 at 20,000 samples (tested; the kernel widens both
  densities a little, which biases the overlap slightly upward). A constant sample has bandwidth 0
  (a point mass), so two constants overlap 1 if equal and 0 otherwise.

Facts and their distributions
-----------------------------
Following App. J ("we calculate the buy order ratio for each minute and then compare the
distribution of the ratio between simulation and replay"), per-window scalars are computed *per
minute* of a window, and a fact's distribution is the pool of its per-minute values over every
real window (replay) or over every rollout of every window (simulation). Event-level facts pool
their events the same way. A window is a ``Trajectory``: the orders of the window and the book
touch after each order (real feed or rollout alike).

==========================  ==========  ==========================================================
fact                        kind        one sample is
==========================  ==========  ==========================================================
spread                      discrete    the spread in ticks after an order (every event)
spread_time_weighted        discrete    the same, weighted by how long it lasted (ns)
volatility                  continuous  a minute's realized volatility: sqrt of the sum of the
                                        squared 5-second mid log returns in that minute
mean_order_volume           continuous  a minute's mean size of new limit orders (shares)
aggressive_order_ratio      continuous  a minute's share of limit orders marketable on arrival
buy_order_ratio             continuous  a minute's bids / (bids + asks)
cancel_ratio                continuous  a minute's cancels / all orders
return_1m .. return_5m      continuous  log(mid(t + k min) / mid(t)), t on the window's
                                        1-minute grid with t + k min inside the window
inter_arrival               continuous  log10(1 + interval in microseconds) between consecutive
                                        orders (log scale: intervals span ns to seconds)
touch_depth                 continuous  log10 of the shares at the best bid, and at the best ask,
                                        each second (needs the trajectory's touch quantities)
touch_imbalance             continuous  (bid - ask) / (bid + ask) shares at the touch, each second
aggressive_volume           continuous  log10(1 + shares sent by marketable limit orders) in a
                                        minute
max_order_volume            continuous  log10 of the largest new limit order of a minute
max_sweep                   continuous  the most ticks one marketable order moved the touch it
                                        took from, in a minute (a walk through several levels)
large_orders                tail 0.999  log10 of a new limit order's size (every order that is
                                        not fleeting)
large_cancels               tail 0.999  log10 of a cancel's size (every cancel of an order that
                                        is not fleeting)
touch_orders                tail 0.99   log10 of the size of a resting order that joined the best
                                        price on its side or set a new one (not fleeting)
touch_cancels               tail 0.99   log10 of the size of a cancel that took its shares from
                                        the best price (not fleeting)
sweep_ratio                 tail at 0   log10 of a marketable order's size over the shares at
                                        the touch it hit (above 0: it asked for more than that)
sweep_bursts                tail at 1.5 the most sweeps (marketable orders that asked for more
                                        than the touch) one side sent within a second, each second
sweep_pressure              tail at 1.5 |buy sweeps - sell sweeps| in a minute
==========================  ==========  ==========================================================

A *fleeting* order (``fleeting``) is withdrawn within ``FLEETING_NS`` (1 s) of its arrival; its
add and its cancel are both left out of the tail facts. A spoofer's order has to rest where
others can see it to mislead them, so it is never fleeting; flickering orders that live for
milliseconds are a different behaviour (other facts see their rate: ``cancel_ratio``,
``inter_arrival``). On the shared AMZN day the last half hour is full of them: large orders
added and deleted within a few milliseconds, dozens per window, that made the clean windows at
the close look like spoofing to the size tails. The test needs order ids (``Trajectory.order_id``);
a trajectory without them has no fleeting orders.

The five after the returns (``FOOTPRINT_FACTS``) and the five tail facts (``TAIL_FACTS``) are
not in the paper: the detector uses them because manipulation shows there first (a spoof order
is large and sits at the touch, an ignition walks the book), where a window's spread or returns
move little. It scores all but ``max_sweep`` (``surveillance.detection.detector.DETECTION_FACTS`` says
why).

Whether an order was at the touch (``at_touch``) is told from the touch before and after it: a
resting order joined the touch when the best price stayed and its shares grew by the order's
size, or set it when the best price moved to it and holds exactly that size; a cancel took from
the touch when the best price stayed and its shares fell by the cancel's size, or the best level
it emptied held exactly that. On the shared days a 25-minute window has 600 to 1,700 lasting
orders at the touch (a fifth to a third of all its lasting orders), with a 99% size quantile of
300 to 600 shares (once 970); the 99.9% quantile of all its orders is 500 to 1,025 shares on
GOOG. A moderate spoof order (seven times the typical touch: 700 shares on both days) is
therefore often unremarkable among all orders and stands out among those at the touch. The
touch facts cut at the 99% quantile: they have fewer samples than the whole-book ones.

``sweep_ratio`` sees a marketable order that asked for more than the shares at the touch (it
walked on to further levels, or rested what was left). In the real feed 0.7 to 8% of a
window's marketable orders do; in the order model's rollouts 0.02 to 0.15% do (about 30% ask
for exactly what the touch holds). Its cut is fixed at a ratio of 1 (``TailCut.at``), so the
fact is what it says, the share of marketable orders that asked for more than the touch, in
the real window against the simulation (and, through calibration, against what is usual). A
quantile cut floored by the previous real window, as for the size tails, sat above 1 whenever
that window held more than 5% of sweeps, and then counted only the largest ratios, which
ordinary flow supplies too. On the shared AMZN day a clean 25-minute window of the last 90
minutes has 16 to 52 sweeps, and one with a moderate momentum ignition 56 to 157; with the
fixed cut the fact alone ranks every such ignition window above every clean one in the
benchmark (within AMZN, three seeds; 0.97 to 0.99 AUC with the floored cut).

The last two (``AGGRESSIVE_FACTS``) see aggressive manipulation, which leaves no resting-order
footprint: ``sweep_ratio`` counts a window's sweeps, but a busy close supplies dozens of
ordinary ones. A momentum ignition sends its sweeps milliseconds apart, two or more in one
second on one side (``sweep_bursts``: ordinary sweeps rarely come in pairs of one side within
a second); a pump and dump keeps sweeping one side for minutes (``sweep_pressure``: a minute
with two or more sweeps more on one side than on the other). On the order model's rollouts
both are almost always 0, so each fact is, like ``sweep_ratio``, the share of the window's
seconds (minutes) beyond its fixed cut against the simulation's, judged through calibration
against what is usual. Both grow on ordinary windows towards the close, as the sweep count
does (time-of-day norms read them in their bucket). How they were chosen, and the candidates
left out: docs/studies/aggressive-manipulation.md.

A tail fact is compared by ``overlap_tail``: both distributions are cut at the simulation's
upper q-quantile (or at a fixed value, ``overlap_at``) and the overlap of the two cut
distributions is ``1 - |p_real - p_sim|`` (the shares above the cut). It is an overlap
coefficient like the others (1: the real window has the simulation's share of extreme
samples), but of the tail alone: a few dozen spoof orders among ten thousand ordinary ones do
not change a density estimate, and they multiply the number of orders beyond the simulation's
99.9% quantile.

Minutes without limit orders give no ratio sample (rather than a made-up 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import erf, sqrt

import numpy as np
from scipy.signal import fftconvolve

from simulator.trajectory import Trajectory
from simulator.units import NS_PER_MIN, NS_PER_S

EMPTY_ASK_PRICE = 9_999_999_999  # the book's sentinels (simulator.book)
EMPTY_BID_PRICE = -9_999_999_999
ASK, BID, CANCEL = 0, 1, 2  # simulator.orderstream.OrderType values

GRID_POINTS = 2048
RETURN_HORIZONS_MIN = (1, 2, 3, 4, 5)
VOLATILITY_STEP_NS = 5 * NS_PER_S

# Paper, Table 7 ("Distribution Similarity"); facts the paper does not list map to None.
PAPER_TABLE7: dict[str, float | None] = {
    "spread": 0.970,
    "spread_time_weighted": None,
    "volatility": 0.872,
    "mean_order_volume": 0.957,
    "aggressive_order_ratio": 0.920,
    "buy_order_ratio": 0.933,
    "cancel_ratio": None,
    "return_1m": 0.956,
    "return_2m": 0.936,
    "return_3m": 0.924,
    "return_4m": 0.914,
    "return_5m": 0.908,
    "inter_arrival": None,
}
FACTS = tuple(PAPER_TABLE7)
# Facts beyond the paper's, for detection: the book at the touch and the tails of order flow,
# where manipulation leaves its footprint (spoof orders are large, ignitions walk the book).
FOOTPRINT_FACTS = (
    "touch_depth",
    "touch_imbalance",
    "aggressive_volume",
    "max_order_volume",
    "max_sweep",
)
# Facts of aggressive trading (momentum ignition, pump and dump): how sweeps cluster in time and
# persist on one side, where the resting-order footprints above see nothing.
AGGRESSIVE_FACTS = ("sweep_bursts", "sweep_pressure")


@dataclass(frozen=True, slots=True)
class TailCut:
    """Where a tail fact's two distributions are cut: at the simulation's upper ``quantile``
    (raised to the previous real window's, ``surveillance.detection.detector.SimulationNull``), or at the
    fixed value ``at``."""

    quantile: float | None = None
    at: float | None = None

    def __post_init__(self) -> None:
        if (self.quantile is None) == (self.at is None):
            raise ValueError("a tail cut is a quantile or a fixed value, not both or neither")
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise ValueError(f"tail quantile must lie in (0, 1), got {self.quantile}")


# Tail facts: the share of samples beyond a cut, compared by the overlap of the two
# distributions *above/below that threshold* (``overlap_tail``). A spoofer's few dozen large
# orders among ten thousand ordinary ones barely move a density, but they multiply the count of
# orders the simulated futures almost never produce.
TAIL_FACTS: dict[str, TailCut] = {
    "large_orders": TailCut(quantile=0.999),
    "large_cancels": TailCut(quantile=0.999),
    "touch_orders": TailCut(quantile=0.99),
    "touch_cancels": TailCut(quantile=0.99),
    "sweep_ratio": TailCut(at=0.0),  # log10 of a ratio of 1: asked for more than the touch
    # aggressive trading (AGGRESSIVE_FACTS): an ignition's sweeps come milliseconds apart, a
    # pump's keep to one side for minutes
    "sweep_bursts": TailCut(at=1.5),  # two or more sweeps of one side within one second
    "sweep_pressure": TailCut(at=1.5),  # one side sent 2+ sweeps more than the other in a minute
}
DISCRETE_FACTS = frozenset({"spread", "spread_time_weighted"})
FLEETING_NS = NS_PER_S  # an order withdrawn within this long of its arrival is fleeting
# Bumped whenever what a fact measures changes (2: fleeting orders left out of the tails; 3: the
# touch and sweep tails; 4: the sweep tail cut at a ratio of 1; 5: the aggressive facts), so a
# calibration fitted on the old facts reads as fitted with another detection config.
FACTS_REVISION = 5


# --------------------------------------------------------------------------- overlap


def overlap_discrete(
    a: np.ndarray | list[int],
    b: np.ndarray | list[int],
    weights_a: np.ndarray | list[float] | None = None,
    weights_b: np.ndarray | list[float] | None = None,
) -> float:
    """Exact overlap of the (weighted) empirical pmfs of two integer samples.

    >>> overlap_discrete([1, 1, 2], [1, 2, 2])
    0.6666666666666666
    >>> overlap_discrete([3, 3], [3])
    1.0
    >>> overlap_discrete([1, 2], [1, 2], weights_a=[3.0, 1.0])
    0.75
    """
    x = np.asarray(a)
    y = np.asarray(b)
    wa = np.ones(len(x)) if weights_a is None else np.asarray(weights_a, dtype=np.float64)
    wb = np.ones(len(y)) if weights_b is None else np.asarray(weights_b, dtype=np.float64)
    if len(wa) != len(x) or len(wb) != len(y):
        raise ValueError("weights must have one entry per sample")
    if wa.sum() <= 0 or wb.sum() <= 0:
        raise ValueError("overlap needs two non-empty samples")
    values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    p = np.bincount(inverse[: len(x)], weights=wa, minlength=len(values)) / wa.sum()
    q = np.bincount(inverse[len(x) :], weights=wb, minlength=len(values)) / wb.sum()
    return float(np.minimum(p, q).sum())


def overlap_tail(a: np.ndarray, b: np.ndarray, q: float, floor: float | None = None) -> float:
    """Overlap of ``a`` and ``b`` dichotomized at ``b``'s upper ``q``-quantile (raised to
    ``floor`` where that is higher): with ``p_a``, ``p_b`` the shares above the cut,
    ``OVL = min(p_a, p_b) + min(1 - p_a, 1 - p_b) = 1 - |p_a - p_b|``.

    >>> b = np.arange(1000.0)
    >>> overlap_tail(np.arange(1000.0), b, 0.99)
    1.0
    >>> round(overlap_tail(np.full(100, 5000.0), b, 0.99), 6)  # all beyond: 1 - |1 - 0.01|
    0.01
    """
    a, b = _nonempty(a, b)
    threshold = float(np.quantile(b, q))
    if floor is not None:
        threshold = max(threshold, floor)
    return _shares_overlap(a, b, threshold)


def overlap_at(a: np.ndarray, b: np.ndarray, cut: float) -> float:
    """Overlap of ``a`` and ``b`` dichotomized at ``cut``: ``1 - |p_a - p_b|`` with ``p_a``,
    ``p_b`` the shares above it.

    >>> overlap_at(np.array([-1.0, 0.5]), np.array([-1.0, -0.5, 0.0, 2.0]), 0.0)
    0.75
    """
    return _shares_overlap(*_nonempty(a, b), cut)


def _nonempty(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("overlap of an empty sample")
    return a, b


def _shares_overlap(a: np.ndarray, b: np.ndarray, cut: float) -> float:
    return float(1.0 - abs(np.mean(a > cut) - np.mean(b > cut)))


def silverman_bandwidth(x: np.ndarray) -> float:
    """Silverman's rule, ``0.9 * min(sd, IQR / 1.34) * n ** -0.2`` (sd alone when the IQR is 0).

    >>> silverman_bandwidth(np.array([5.0, 5.0, 5.0]))
    0.0
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    sd = float(x.std(ddof=1))
    q75, q25 = np.percentile(x, [75, 25])
    spread = min(sd, (q75 - q25) / 1.34) if q75 > q25 else sd
    return 0.9 * spread * len(x) ** -0.2


def _binned_kde(x: np.ndarray, lo: float, dx: float, points: int, bandwidth: float) -> np.ndarray:
    """Mass per grid point of a KDE of ``x`` (all inside the grid): linear binning, then a
    Gaussian blur. Mass the blur pushes off the grid is lost, which only matters for values
    within a few bandwidths of the grid's ends (the grid is padded by 5 bandwidths)."""
    pos = (x - lo) / dx
    left = np.clip(np.floor(pos).astype(np.int64), 0, points - 2)
    frac = np.clip(pos - left, 0.0, 1.0)
    mass = np.bincount(left, weights=1.0 - frac, minlength=points)
    mass += np.bincount(left + 1, weights=frac, minlength=points)
    sigma = bandwidth / dx
    if sigma > 0.05:
        half = int(np.ceil(5 * sigma))
        k = np.arange(-half, half + 1, dtype=np.float64)
        kernel = np.exp(-0.5 * (k / sigma) ** 2)
        mass = fftconvolve(mass, kernel / kernel.sum(), mode="same")
    return np.clip(mass, 0.0, None)


def overlap_continuous(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    *,
    grid_points: int = GRID_POINTS,
    bandwidth: float | None = None,
) -> float:
    """Overlap of two samples' Gaussian KDEs (Silverman bandwidth each, unless given).

    The grid spans the pooled sample's 0.1%..99.9% quantiles, padded by 5 bandwidths, with a
    step of at most a quarter of the smaller positive bandwidth (``grid_points`` at least, 2**18
    at most). Values beyond the grid are compared as two tail masses (below, above), so a few
    outliers neither stretch the grid until every density fits in one cell (which reads as a
    perfect overlap) nor vanish.

    >>> x = np.random.default_rng(0).normal(size=20_000)
    >>> y = np.random.default_rng(1).normal(1.0, 1.0, size=20_000)
    >>> abs(overlap_continuous(x, y) - normal_overlap(1.0)) < 0.02  # analytic: 0.617
    True
    >>> overlap_continuous([0.0, 0.0], [0.0])
    1.0
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x = x[np.isfinite(x)]
    y = y[np.isfinite(y)]
    if len(x) == 0 or len(y) == 0:
        raise ValueError("overlap needs two non-empty samples")
    hx = silverman_bandwidth(x) if bandwidth is None else bandwidth
    hy = silverman_bandwidth(y) if bandwidth is None else bandwidth
    pooled = np.concatenate([x, y])
    lo, hi = (float(v) for v in np.quantile(pooled, [0.001, 0.999]))
    if hi <= lo:
        lo, hi = float(pooled.min()), float(pooled.max())
        if hi <= lo:  # every value equal
            return 1.0
    pad = 5 * max(hx, hy)
    lo, hi = lo - pad, hi + pad
    positive = [h for h in (hx, hy) if h > 0]
    points = grid_points
    if positive:
        points = int(np.clip(np.ceil((hi - lo) / (min(positive) / 4)) + 1, grid_points, 1 << 18))
    dx = (hi - lo) / (points - 1)
    masses = []
    for sample, h in ((x, hx), (y, hy)):
        below = float(np.mean(sample < lo))
        above = float(np.mean(sample > hi))
        inside = sample[(sample >= lo) & (sample <= hi)]
        grid = _binned_kde(inside, lo, dx, points, h) if len(inside) else np.zeros(points)
        if grid.sum() > 0:
            grid *= (1.0 - below - above) / grid.sum()
        masses.append((below, above, grid))
    (bx, ax, px), (by, ay, py) = masses
    overlap = min(bx, by) + min(ax, ay) + float(np.minimum(px, py).sum())
    return min(overlap, 1.0)


def normal_overlap(d: float) -> float:
    """Analytic overlap of N(0, 1) and N(d, 1): ``2 * Phi(-|d| / 2)``.

    >>> normal_overlap(0.0)
    1.0
    """
    return 2 * 0.5 * (1 + erf(-abs(d) / 2 / sqrt(2)))


# --------------------------------------------------------------------------- windows


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    ok = den > 0
    return num[ok] / den[ok]


def fleeting(w: Trajectory, within_ns: int = FLEETING_NS) -> np.ndarray:
    """Per order of ``w``: True for a limit order cancelled (in part or in full) within
    ``within_ns`` of its arrival, and for such a cancel. An order that arrived before the window
    is never fleeting (its arrival is not seen); nor is one whose cancel comes after the window.

    >>> w = Trajectory(0, 60 * NS_PER_S, 900, 1100, ts_ns=np.array([0, 10, 2 * NS_PER_S, 3 * NS_PER_S]),
    ...     type=np.array([BID, CANCEL, BID, CANCEL]), qty=np.array([5, 5, 7, 7]),
    ...     aggressive=np.zeros(4, bool), best_bid=np.full(4, 900), best_ask=np.full(4, 1100),
    ...     order_id=np.array([1, 1, 2, 2]))
    >>> fleeting(w).tolist()  # order 1 lived 10 ns, order 2 a second
    [True, True, False, False]
    """
    out = np.zeros(len(w.ts_ns), dtype=bool)
    if w.order_id is None or len(out) == 0:
        return out
    ids = w.order_id
    limit = (w.type != CANCEL) & (ids != 0)
    cancel = (w.type == CANCEL) & (ids != 0)
    # arrival of every limit order seen in the window (the first, should an id repeat)
    add_ids, first = np.unique(ids[limit], return_index=True)
    if len(add_ids) == 0:
        return out
    add_at = np.flatnonzero(limit)[first]
    c_index = np.flatnonzero(cancel)
    pos = np.searchsorted(add_ids, ids[c_index]).clip(max=len(add_ids) - 1)
    seen = add_ids[pos] == ids[c_index]  # a cancel of an order that arrived in the window
    c_index, pos = c_index[seen], pos[seen]
    quick = (w.ts_ns[c_index] - w.ts_ns[add_at[pos]]) < within_ns
    out[c_index[quick]] = True
    out[add_at[pos[quick]]] = True
    return out


def at_touch(w: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Per order of ``w`` (which needs its touch quantities): whether it was a resting limit
    order that joined the best price on its side or set a new one, and whether it was a cancel
    that took its shares from the best price (the touch shrank by exactly its size, or the level
    it emptied was the touch). Told from the touch before and after each order.

    >>> w = Trajectory(0, 60 * NS_PER_S, 900, 1100, ts_ns=np.array([1, 2, 3, 4]),
    ...     type=np.array([BID, BID, CANCEL, ASK]), qty=np.array([50, 30, 50, 20]),
    ...     aggressive=np.zeros(4, bool), best_bid=np.array([900, 1000, 1000, 1000]),
    ...     best_ask=np.full(4, 1100), bid_qty=np.array([150, 30, 30, 30]),
    ...     ask_qty=np.array([70, 70, 70, 70]), qty0=(100, 70))
    >>> [a.tolist() for a in at_touch(w)]  # the ask at 4 rested behind the touch
    [[True, True, False, False], [False, False, False, False]]
    """
    if w.bid_qty is None or w.ask_qty is None:
        raise ValueError("this trajectory has no touch quantities")
    return _at_touch(w, *_touch_path(w))


def _touch_path(w: Trajectory) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best bid, best ask and their shares at the window's start and after every order (one
    longer than the orders: entry i is the touch order i met, entry i + 1 the one it left)."""
    return (
        np.concatenate([[w.bid0], w.best_bid]),
        np.concatenate([[w.ask0], w.best_ask]),
        np.concatenate([[w.qty0[0]], w.bid_qty]),  # type: ignore[list-item]
        np.concatenate([[w.qty0[1]], w.ask_qty]),  # type: ignore[list-item]
    )


def _at_touch(w: Trajectory, bb, ba, bq, aq) -> tuple[np.ndarray, np.ndarray]:
    kind, q = w.type, w.qty
    passive = ~w.aggressive.astype(bool)
    same_b, same_a = bb[1:] == bb[:-1], ba[1:] == ba[:-1]
    bid_joins = (same_b & (bq[1:] - bq[:-1] == q)) | ((bb[1:] > bb[:-1]) & (bq[1:] == q))
    ask_joins = (same_a & (aq[1:] - aq[:-1] == q)) | ((ba[1:] < ba[:-1]) & (aq[1:] == q))
    joins = passive & (((kind == BID) & bid_joins) | ((kind == ASK) & ask_joins))
    bid_takes = (same_b & (bq[:-1] - bq[1:] == q)) | ((bb[1:] < bb[:-1]) & (bq[:-1] == q))
    ask_takes = (same_a & (aq[:-1] - aq[1:] == q)) | ((ba[1:] > ba[:-1]) & (aq[:-1] == q))
    takes = (kind == CANCEL) & (bid_takes | ask_takes)
    return joins, takes


def window_facts(w: Trajectory) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Every fact's samples for one window: ``fact -> (values, weights or None)``.

    >>> w = Trajectory(0, 60 * NS_PER_S, 900, 1100, ts_ns=np.array([10, 20]),
    ...     type=np.array([1, 2]), qty=np.array([100, 50]), aggressive=np.array([False, False]),
    ...     best_bid=np.array([1000, 900]), best_ask=np.array([1100, 1100]))
    >>> f = window_facts(w)
    >>> f["spread"][0].tolist(), f["buy_order_ratio"][0].tolist(), f["cancel_ratio"][0].tolist()
    ([1, 2], [1.0], [0.5])
    """
    tick = w.tick_size
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    inside = (w.ts_ns >= w.start_ns) & (w.ts_ns < w.end_ns)
    ts = w.ts_ns[inside]
    kind = w.type[inside]
    qty = w.qty[inside]
    aggressive = w.aggressive[inside].astype(bool)
    bid = w.best_bid[inside]
    ask = w.best_ask[inside]

    # spread: after every event, and weighted by how long each value lasted
    ok = (bid != EMPTY_BID_PRICE) & (ask != EMPTY_ASK_PRICE)
    spread = (ask - bid) // tick
    out["spread"] = (spread[ok].astype(np.int64), None)
    start_ok = w.bid0 != EMPTY_BID_PRICE and w.ask0 != EMPTY_ASK_PRICE
    values = np.concatenate([[(w.ask0 - w.bid0) // tick], spread]).astype(np.int64)
    valid = np.concatenate([[start_ok], ok])
    times = np.concatenate([[w.start_ns], ts, [w.end_ns]])
    held = np.diff(times).astype(np.float64)
    keep = valid & (held > 0)
    out["spread_time_weighted"] = (values[keep], held[keep])

    # per-minute order-flow ratios
    minutes = w.minutes
    minute = ((ts - w.start_ns) // NS_PER_MIN).astype(np.int64)
    in_grid = minute < minutes
    m = minute[in_grid]
    k = kind[in_grid]
    limit = k != CANCEL
    n_all = np.bincount(m, minlength=minutes).astype(np.float64)
    n_limit = np.bincount(m[limit], minlength=minutes).astype(np.float64)
    n_bid = np.bincount(m[k == BID], minlength=minutes).astype(np.float64)
    n_cancel = np.bincount(m[k == CANCEL], minlength=minutes).astype(np.float64)
    n_aggr = np.bincount(m[limit & aggressive[in_grid]], minlength=minutes).astype(np.float64)
    vol_limit = np.bincount(m[limit], weights=qty[in_grid][limit], minlength=minutes)
    out["mean_order_volume"] = (_ratio(vol_limit, n_limit), None)
    out["aggressive_order_ratio"] = (_ratio(n_aggr, n_limit), None)
    out["buy_order_ratio"] = (_ratio(n_bid, n_limit), None)
    out["cancel_ratio"] = (_ratio(n_cancel, n_all), None)

    # volatility: realized volatility of 5 s mid log returns within each minute
    steps = NS_PER_MIN // VOLATILITY_STEP_NS
    grid = w.start_ns + np.arange(minutes * steps + 1, dtype=np.int64) * VOLATILITY_STEP_NS
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mid = np.log(w.mid_at(grid))
        r = np.diff(log_mid).reshape(minutes, steps) if minutes else np.zeros((0, steps))
        rv = np.sqrt(np.sum(r**2, axis=1))
    out["volatility"] = (rv[np.isfinite(rv)], None)

    # k-minute returns on the 1-minute grid
    grid_min = w.start_ns + np.arange(minutes + 1, dtype=np.int64) * NS_PER_MIN
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = np.log(w.mid_at(grid_min))
        for h in RETURN_HORIZONS_MIN:
            ret = lm[h:] - lm[:-h] if minutes >= h else np.zeros(0)
            out[f"return_{h}m"] = (ret[np.isfinite(ret)], None)

    # inter-arrival times between consecutive orders, log10(1 + microseconds)
    gaps = np.diff(ts).astype(np.float64)
    out["inter_arrival"] = (np.log10(1.0 + gaps / 1_000.0), None)

    # book shape at the touch, sampled every second (both sides of the book); none without
    # the touch quantities
    out["touch_depth"] = out["touch_imbalance"] = (np.zeros(0), None)
    if w.bid_qty is not None:
        seconds = int((w.end_ns - w.start_ns) // NS_PER_S)
        grid_s = w.start_ns + np.arange(seconds, dtype=np.int64) * NS_PER_S
        bq, aq = w.touch_qty_at(grid_s)
        depth = np.concatenate([bq[bq > 0], aq[aq > 0]]).astype(np.float64)
        out["touch_depth"] = (np.log10(depth), None)
        both = (bq > 0) & (aq > 0)
        b, a = bq[both].astype(np.float64), aq[both].astype(np.float64)
        out["touch_imbalance"] = ((b - a) / (b + a), None)

    # per minute: log10 of the shares sent by marketable limit orders
    taking = limit & aggressive[in_grid]
    aggr_vol = np.bincount(m[taking], weights=qty[in_grid][taking], minlength=minutes)
    out["aggressive_volume"] = (np.log10(1.0 + aggr_vol), None)
    # per minute: log10 of the largest new limit order
    big = np.zeros(minutes)
    np.maximum.at(big, m[limit], qty[in_grid][limit].astype(np.float64))
    out["max_order_volume"] = (np.log10(big[n_limit > 0]), None)
    # per minute: the deepest walk of one marketable order, in ticks the touch it took from
    # moved (a sweep through several levels moves it by their spread)
    prev_bid = np.concatenate([[w.bid0], bid[:-1]])
    prev_ask = np.concatenate([[w.ask0], ask[:-1]])
    taken = np.where(kind == BID, ask - prev_ask, prev_bid - bid)
    valid = aggressive & (kind != CANCEL) & ok & np.concatenate([[start_ok], ok[:-1]])
    walk = np.where(valid, np.maximum(taken, 0) / tick, np.nan)[in_grid]
    sweep = np.zeros(minutes)
    fin = np.isfinite(walk)
    np.maximum.at(sweep, m[fin], walk[fin])
    out["max_sweep"] = (sweep[n_limit > 0], None)

    # tail facts (TAIL_FACTS): every new limit order's size, every cancel's, fleeting ones left out
    lasting = ~fleeting(w)[inside]
    new = qty[(kind != CANCEL) & (qty > 0) & lasting].astype(np.float64)
    gone = qty[(kind == CANCEL) & (qty > 0) & lasting].astype(np.float64)
    out["large_orders"] = (np.log10(new), None)
    out["large_cancels"] = (np.log10(gone), None)
    # the same at the touch (orders that joined or set the best price, cancels that took from
    # it), and every marketable order's size over the shares at the touch it hit (above 1: it
    # swept on); none without the touch quantities
    out["touch_orders"] = out["touch_cancels"] = out["sweep_ratio"] = (np.zeros(0), None)
    if w.bid_qty is not None and w.ask_qty is not None:
        path = _touch_path(w)
        joins, takes = _at_touch(w, *path)
        joins, takes = joins[inside] & lasting, takes[inside] & lasting
        out["touch_orders"] = (np.log10(qty[joins & (qty > 0)].astype(np.float64)), None)
        out["touch_cancels"] = (np.log10(qty[takes & (qty > 0)].astype(np.float64)), None)
        bq, aq = path[2][:-1][inside], path[3][:-1][inside]  # the touch each order met
        hit = np.where(kind == BID, aq, bq)
        taking = aggressive & (kind != CANCEL) & (hit > 0) & (qty > 0)
        out["sweep_ratio"] = (np.log10(qty[taking] / hit[taking]), None)
    out.update(aggressive_facts(w))
    return out


def aggressive_facts(w: Trajectory) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """The ``AGGRESSIVE_FACTS`` samples of one window (``window_facts`` includes them); none
    without the touch quantities, which tell a sweep from an order the touch could fill."""
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "sweep_bursts": (np.zeros(0), None),
        "sweep_pressure": (np.zeros(0), None),
    }
    if w.bid_qty is None or w.ask_qty is None:
        return out
    inside = (w.ts_ns >= w.start_ns) & (w.ts_ns < w.end_ns)
    ts, kind, qty = w.ts_ns[inside], w.type[inside], w.qty[inside]
    _, _, bq, aq = _touch_path(w)
    hit = np.where(kind == BID, aq[:-1][inside], bq[:-1][inside])  # the touch each order met
    # a sweep: a marketable order that asked for more than the touch it hit (``sweep_ratio``)
    sweep = w.aggressive[inside].astype(bool) & (kind != CANCEL) & (hit > 0) & (qty > hit)
    buy, sell = sweep & (kind == BID), sweep & (kind == ASK)

    seconds = int((w.end_ns - w.start_ns) // NS_PER_S)
    sec = ((ts - w.start_ns) // NS_PER_S).astype(np.int64)
    out["sweep_bursts"] = (
        np.maximum(_count(sec, buy, seconds), _count(sec, sell, seconds)).astype(np.float64),
        None,
    )
    minutes = w.minutes
    minute = ((ts - w.start_ns) // NS_PER_MIN).astype(np.int64)
    net = _count(minute, buy, minutes) - _count(minute, sell, minutes)
    out["sweep_pressure"] = (np.abs(net).astype(np.float64), None)
    return out


def _count(bucket: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """How many of the masked orders fall in each of the ``n`` buckets (later ones ignored)."""
    keep = mask & (bucket < n)
    return np.bincount(bucket[keep], minlength=n)[:n].astype(np.int64)


@dataclass(slots=True)
class StylizedFacts:
    """Pools the fact samples of many windows (River-style: ``update`` then ``get``).

    >>> w = Trajectory(0, 60 * NS_PER_S, 900, 1100, ts_ns=np.array([10, 20]),
    ...     type=np.array([1, 0]), qty=np.array([100, 300]), aggressive=np.array([False, True]),
    ...     best_bid=np.array([1000, 1000]), best_ask=np.array([1100, 1100]))
    >>> facts = StylizedFacts().update(w).update(w)
    >>> facts.windows, facts.get("mean_order_volume")[0].tolist()
    (2, [200.0, 200.0])
    """

    values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    windows: int = 0

    def update(self, window: Trajectory) -> StylizedFacts:
        return self.add(window_facts(window))

    def add(self, facts: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> StylizedFacts:
        """Pool one window's facts as ``window_facts`` returns them (computed once, pooled
        into several collections: ``surveillance.studies.realism.exchangeable_overlaps``)."""
        for name, (vals, wts) in facts.items():
            self.values.setdefault(name, []).append(vals)
            if wts is not None:
                self.weights.setdefault(name, []).append(wts)
        self.windows += 1
        return self

    def get(self, fact: str) -> tuple[np.ndarray, np.ndarray | None]:
        """All samples of one fact so far: ``(values, weights or None)``."""
        if fact not in PAPER_TABLE7 and fact not in FOOTPRINT_FACTS + AGGRESSIVE_FACTS:
            known = ", ".join(FACTS + FOOTPRINT_FACTS + AGGRESSIVE_FACTS)
            raise KeyError(f"unknown stylized fact {fact!r}; known: {known}")
        parts = self.values.get(fact, [])
        vals = np.concatenate(parts) if parts else np.zeros(0)
        wparts = self.weights.get(fact)
        wts = np.concatenate(wparts) if wparts else None
        return vals, wts

    def summary(self, fact: str) -> dict[str, float | int | None]:
        vals, wts = self.get(fact)
        if len(vals) == 0:
            return {"n": 0, "mean": None, "std": None}
        if wts is not None and wts.sum() > 0:
            mean = float(np.average(vals, weights=wts))
            std = float(np.sqrt(np.average((vals - mean) ** 2, weights=wts)))
        else:
            mean, std = float(np.mean(vals)), float(np.std(vals))
        return {"n": len(vals), "mean": mean, "std": std}


def fact_overlap(real: StylizedFacts, sim: StylizedFacts, fact: str) -> float | None:
    """OVL of one fact's real and simulated distributions (None if either has no sample)."""
    a, wa = real.get(fact)
    b, wb = sim.get(fact)
    if len(a) == 0 or len(b) == 0:
        return None
    if fact in DISCRETE_FACTS:
        return overlap_discrete(a, b, wa, wb)
    return overlap_continuous(a, b)


def compare(real: StylizedFacts, sim: StylizedFacts) -> dict[str, float | None]:
    """OVL per fact, in ``FACTS`` order."""
    return {fact: fact_overlap(real, sim, fact) for fact in FACTS}
