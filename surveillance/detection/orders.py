"""Order-level evidence of a decision: which real orders drive each diverged fact, and a guess
at the typology they fit.

A score says that ``large_cancels`` diverged; an analyst needs the orders. Per diverged fact:

- the size and touch tails (``TAIL_FACTS`` cut at a quantile, and the largest-order facts):
  the real orders beyond the cut the fact was scored with (the simulation's quantile floored by
  the previous real window), with id, time, side, price, size, how long they lived, how far from
  the touch they arrived and how they ended;
- inter-arrival and cancel facts: the message bursts (100 ms bins far above the window's usual
  rate, merged), with their start, end, count, cancels and order ids;
- sweeps and aggressive flow: the marketable orders that asked for more than the touch held,
  with the mid-price path after each;
- other facts (spread, volatility, returns, book shape) describe the whole window: no order list.

Then ``typology``: spoofing, layering, quote stuffing, momentum ignition, pump and dump or none,
with one sentence saying why. It is a triage hint from fixed rules over that evidence, not a
classifier: the analyst decides.

Cost: numpy masks over the window's orders (the same as ``window_facts``) and one pass over the
window's and the previous window's events for the few order ids it reports; a few milliseconds
on a 25-minute window of 20,000 events, against seconds for the rollouts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.trajectory import Trajectory
from simulator.types import BookEvent, EventKind, Side
from simulator.units import NS_PER_MS, NS_PER_S
from surveillance.detection.metrics import (
    ASK,
    BID,
    CANCEL,
    TAIL_FACTS,
    _at_touch,
    _touch_path,
    fleeting,
)

MAX_ITEMS = 25  # per fact: the largest or densest first; ``total`` says how many there were
BURST_BIN_NS = 100 * NS_PER_MS
BURST_MIN_MESSAGES = 25  # per 100 ms bin, and at least BURST_RATE_FACTOR x the usual bin
BURST_RATE_FACTOR = 8.0
BURST_IDS = 20
STUFFING_MESSAGES = 60  # a burst this large, mostly cancelled, is stuffing rather than a flurry
SWEEP_AFTER_S = (0, 1, 5, 30, 60)  # mid-price path after a sweep, seconds
TYPOLOGIES = (
    "spoofing",
    "layering",
    "quote_stuffing",
    "momentum_ignition",
    "pump_and_dump",
    "none",
)
ORDER_FACTS = ("large_orders", "touch_orders", "max_order_volume", "mean_order_volume")
CANCEL_FACTS = ("large_cancels", "touch_cancels")
BURST_FACTS = ("inter_arrival", "cancel_ratio")
SWEEP_FACTS = (
    "sweep_ratio",
    "max_sweep",
    "aggressive_volume",
    "aggressive_order_ratio",
    "sweep_bursts",  # the aggressive facts count sweeps too: their evidence is the sweeps
    "sweep_pressure",
)


@dataclass(slots=True)
class _Life:
    """What the events say about one order: arrival, size, and how it ended."""

    side: str | None = None
    price: int | None = None
    added_ns: int | None = None
    size: int = 0
    executed: int = 0
    cancelled: int = 0
    ended_ns: int | None = None
    deleted: bool = False


@dataclass(slots=True)
class OrderEvidence:
    """The evidence of one window (``as_dict`` is what decisions, alerts and records carry)."""

    facts: list[dict[str, Any]] = field(default_factory=list)
    typology: str = "none"
    reason: str = "No fact diverged."

    def as_dict(self) -> dict[str, Any]:
        return {
            "typology": {"label": self.typology, "reason": self.reason},
            "facts": self.facts,
        }


def _side_name(side: int) -> str:
    return "bid" if side == int(Side.BID) else "ask"


def _lives(events: Sequence[BookEvent], wanted: set[int]) -> dict[int, _Life]:
    """Lifecycles of the ``wanted`` order ids (one pass; other ids cost a set lookup)."""
    out: dict[int, _Life] = {}
    if not wanted:
        return out
    for e in events:
        if e.order_id not in wanted or e.synthetic:
            continue
        life = out.get(e.order_id)
        if life is None:
            life = out[e.order_id] = _Life()
        if life.side is None:
            life.side, life.price = _side_name(int(e.side)), e.price
        if e.kind == EventKind.ADD:
            life.added_ns, life.size = e.ts_ns, e.qty
        elif e.kind in (EventKind.CANCEL, EventKind.DELETE):
            life.cancelled += e.qty
            life.ended_ns = e.ts_ns if e.kind == EventKind.DELETE else life.ended_ns
            life.deleted = life.deleted or e.kind == EventKind.DELETE
        elif e.kind == EventKind.EXECUTE:
            life.executed += e.qty
            if life.size and life.executed + life.cancelled >= life.size:
                life.ended_ns = e.ts_ns
    return out


def _ending(life: _Life | None) -> str:
    if life is None:
        return "unknown"
    if life.deleted or (life.size and life.cancelled >= life.size):
        return "partly executed, then cancelled" if life.executed else "cancelled"
    if life.size and life.executed >= life.size:
        return "executed"
    if life.executed:
        return "partly executed, rest resting"
    if life.cancelled:
        return "partly cancelled, rest resting"
    return "resting at window end" if life.added_ns is not None else "arrived before the window"


def _cut_of(fact: str, null: Any) -> float | None:
    """The log10-size cut ``fact`` was scored with: the simulation's quantile, floored by the
    previous real window (``SimulationNull``), or the fixed cut."""
    cut = TAIL_FACTS.get(fact)
    if cut is None:
        return None
    if cut.at is not None:
        return cut.at
    per_fact = getattr(null, "per_fact", {}).get(fact) if null is not None else None
    if per_fact is None or len(per_fact.pooled[0]) == 0:
        return None
    value = float(np.quantile(per_fact.pooled[0], cut.quantile))
    return max(value, per_fact.floor) if per_fact.floor is not None else value


def _order_row(
    i: int,
    traj: Trajectory,
    life: _Life | None,
    bb: np.ndarray,
    ba: np.ndarray,
    price_scale: int,
) -> dict[str, Any]:
    kind = int(traj.type[i])
    oid = int(traj.order_id[i]) if traj.order_id is not None else 0
    price = int(traj.price[i]) if traj.price is not None else (life.price if life else None)
    side = "bid" if kind == BID else "ask" if kind == ASK else (life.side if life else None)
    # ticks behind the touch the order met on its side: 0 at it, negative inside the spread
    distance = None
    if price is not None and side is not None:
        touch = int(bb[i]) if side == "bid" else int(ba[i])
        if abs(touch) < 9_999_999_999:
            gap = touch - price if side == "bid" else price - touch
            distance = round(gap / traj.tick_size, 2)
    added = life.added_ns if life is not None else None
    ended = life.ended_ns if life is not None else None
    lifetime = (ended - added) / NS_PER_S if added is not None and ended is not None else None
    return {
        "order_id": oid,
        "ts_ns": int(traj.ts_ns[i]),
        "event": "cancel" if kind == CANCEL else "order",
        "side": side,
        "price": None if price is None else round(price / price_scale, 4),
        "size": int(traj.qty[i]),
        "lifetime_s": None if lifetime is None else round(lifetime, 3),
        "distance_ticks": distance,
        "ended": _ending(life),
    }


def _bursts(traj: Trajectory, inside: np.ndarray, quick: np.ndarray) -> list[dict[str, Any]]:
    ts = traj.ts_ns[inside]
    if len(ts) == 0:
        return []
    bins = ((ts - traj.start_ns) // BURST_BIN_NS).astype(np.int64)
    counts = np.bincount(bins)
    busy = counts[counts > 0]
    usual = float(np.median(busy)) if len(busy) else 0.0
    hot = counts >= max(BURST_MIN_MESSAGES, BURST_RATE_FACTOR * usual)
    if not hot.any():
        return []
    # runs of consecutive hot bins
    edges = np.flatnonzero(np.diff(np.concatenate([[0], hot.astype(np.int8), [0]])))
    kinds = traj.type[inside]
    ids = traj.order_id[inside] if traj.order_id is not None else np.zeros(len(ts), np.int64)
    quick_in = quick[inside]
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        sel = (bins >= a) & (bins < b)
        n = int(sel.sum())
        cancels = int((kinds[sel] == CANCEL).sum())
        burst_ids = np.unique(ids[sel][ids[sel] != 0])
        out.append(
            {
                "start_ns": int(ts[sel][0]),
                "end_ns": int(ts[sel][-1]),
                "messages": n,
                "cancels": cancels,
                "fleeting": int(quick_in[sel].sum()),
                "per_second": round(n / ((b - a) * BURST_BIN_NS / NS_PER_S), 1),
                "usual_per_second": round(usual * NS_PER_S / BURST_BIN_NS, 1),
                "order_ids": [int(x) for x in burst_ids[:BURST_IDS]],
                "distinct_orders": len(burst_ids),
            }
        )
    out.sort(key=lambda r: -r["messages"])
    return out


def _sweeps(
    traj: Trajectory, rows: np.ndarray, ratio: np.ndarray, hit: np.ndarray, price_scale: int
) -> list[dict[str, Any]]:
    order = rows[np.argsort(-ratio[rows], kind="stable")][:MAX_ITEMS]
    out = []
    for i in sorted(order.tolist(), key=lambda j: traj.ts_ns[j]):
        t = int(traj.ts_ns[i])
        times = np.array([t + s * NS_PER_S for s in SWEEP_AFTER_S], dtype=np.int64)
        mids = traj.mid_at(times) / price_scale
        buy = int(traj.type[i]) == BID
        out.append(
            {
                "order_id": int(traj.order_id[i]) if traj.order_id is not None else 0,
                "ts_ns": t,
                "side": "buy" if buy else "sell",
                "size": int(traj.qty[i]),
                "touch_shares": int(hit[i]),
                "ratio": round(float(ratio[i]), 2),
                "price": (
                    None if traj.price is None else round(int(traj.price[i]) / price_scale, 4)
                ),
                "mid_after": {
                    f"{s}s": (None if not np.isfinite(m) else round(float(m), 4))
                    for s, m in zip(SWEEP_AFTER_S, mids, strict=True)
                },
            }
        )
    return out


def order_evidence(
    real: Trajectory,
    diverged: Sequence[str],
    *,
    null: Any = None,
    events: Sequence[BookEvent] = (),
    history: Sequence[BookEvent] = (),
    price_scale: int = 10_000,
) -> OrderEvidence:
    """The order-level evidence of one scored window (see the module docstring).

    ``null``: the window's ``SimulationNull`` (the tail cuts); ``events``/``history``: the
    window's and the previous window's feed events (how each reported order arrived and ended).
    """
    ev = OrderEvidence()
    if not diverged:
        return ev
    n = len(real.ts_ns)
    inside = (real.ts_ns >= real.start_ns) & (real.ts_ns < real.end_ns)
    quick = fleeting(real)
    lasting = inside & ~quick
    kind, qty = real.type, real.qty
    touch = real.bid_qty is not None and real.ask_qty is not None
    if touch:
        bb, ba, bq, aq = _touch_path(real)
        joins, takes = _at_touch(real, bb, ba, bq, aq)
        hit = np.where(kind == BID, aq[:-1], bq[:-1])
    else:
        bb = np.concatenate([[real.bid0], real.best_bid])
        ba = np.concatenate([[real.ask0], real.best_ask])
        joins = takes = np.zeros(n, bool)
        hit = np.zeros(n, np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_qty = np.where(qty > 0, np.log10(np.maximum(qty, 1)), -np.inf)
        ratio = np.where(hit > 0, qty / np.maximum(hit, 1), 0.0)
    limit = (kind != CANCEL) & (qty > 0)
    aggressive = real.aggressive.astype(bool)

    picked: dict[str, tuple[str, np.ndarray, float | None]] = {}
    for fact in diverged:
        cut = _cut_of(fact, null)
        if fact in ("large_orders", "touch_orders"):
            base = limit & lasting & (joins if fact == "touch_orders" else True)
            rows = np.flatnonzero(base & (log_qty > cut)) if cut is not None else None
            picked[fact] = ("orders", rows if rows is not None else np.zeros(0, np.int64), cut)
        elif fact in CANCEL_FACTS:
            base = (
                (kind == CANCEL)
                & (qty > 0)
                & lasting
                & (takes if fact == "touch_cancels" else True)
            )
            rows = (
                np.flatnonzero(base & (log_qty > cut)) if cut is not None else np.zeros(0, np.int64)
            )
            picked[fact] = ("orders", rows, cut)
        elif fact in ("max_order_volume", "mean_order_volume"):
            rows = np.flatnonzero(limit & inside & ~aggressive)
            picked[fact] = ("orders", rows[np.argsort(-qty[rows], kind="stable")][:MAX_ITEMS], None)
        elif fact in SWEEP_FACTS:
            rows = np.flatnonzero(inside & limit & aggressive & (ratio > 1.0))
            picked[fact] = ("sweeps", rows, 0.0 if fact == "sweep_ratio" else None)
        elif fact in BURST_FACTS:
            picked[fact] = ("bursts", np.zeros(0, np.int64), None)
        else:
            picked[fact] = ("window", np.zeros(0, np.int64), None)

    wanted = {
        int(real.order_id[i])
        for k, rows, _ in picked.values()
        if k == "orders" and real.order_id is not None
        for i in rows[np.argsort(-qty[rows], kind="stable")][:MAX_ITEMS]
    }
    wanted.discard(0)
    lives = _lives([*history, *events], wanted)
    bursts: list[dict[str, Any]] | None = None
    for fact in diverged:
        what, rows, cut = picked[fact]
        entry: dict[str, Any] = {"fact": fact, "kind": what, "total": len(rows)}
        if cut is not None and what == "orders":
            entry["cut_shares"] = round(10**cut, 1)
        if what == "orders":
            top = rows[np.argsort(-qty[rows], kind="stable")][:MAX_ITEMS]
            ids = real.order_id
            entry["orders"] = [
                _order_row(
                    int(i),
                    real,
                    lives.get(int(ids[i])) if ids is not None else None,
                    bb,
                    ba,
                    price_scale,
                )
                for i in top
            ]
        elif what == "sweeps":
            entry["sweeps"] = _sweeps(real, rows, ratio, hit, price_scale)
        elif what == "bursts":
            if bursts is None:
                bursts = _bursts(real, inside, quick)
            entry["total"] = len(bursts)
            entry["bursts"] = bursts[:MAX_ITEMS]
        else:
            entry["note"] = "a property of the whole window; no order-level attribution"
        ev.facts.append(entry)
    ev.typology, ev.reason = _typology(ev.facts, real, price_scale)
    return ev


def _typology(facts: list[dict[str, Any]], real: Trajectory, price_scale: int) -> tuple[str, str]:
    """First rule that holds, most specific first; each returns its one-sentence reason."""
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in facts:
        by_kind.setdefault(f["kind"], []).append(f)
    bursts = [b for f in by_kind.get("bursts", []) for b in f.get("bursts", [])]
    stuffed = [
        b
        for b in bursts
        if b["messages"] >= STUFFING_MESSAGES and b["cancels"] >= 0.4 * b["messages"]
    ]
    if len(stuffed) >= 2:
        top = max(stuffed, key=lambda b: b["per_second"])
        return "quote_stuffing", (
            f"{len(stuffed)} message bursts mostly cancelled again (the densest at "
            f"{top['per_second']:.0f} messages/s against a usual {top['usual_per_second']:.0f}/s)."
        )
    # one entry per order id, its arrival row rather than its cancel where both are listed
    orders: dict[int, dict[str, Any]] = {}
    for f in by_kind.get("orders", []):
        for o in f.get("orders", []) if f["fact"] in TAIL_FACTS else ():
            if o["order_id"] not in orders or o["event"] == "order":
                orders[o["order_id"]] = o
    withdrawn = [
        o
        for o in orders.values()
        if o["ended"].endswith("cancelled") and (o["lifetime_s"] or 0) >= 1.0
    ]
    if len(withdrawn) >= 2:
        sides = [o["side"] for o in withdrawn]
        side = max(set(sides), key=sides.count)
        levels = {o["price"] for o in withdrawn if o["side"] == side}
        if len(levels) >= 3 and _concurrent(withdrawn, side) >= 3:
            return "layering", (
                f"{sides.count(side)} large {side} orders on {len(levels)} price levels rested "
                "together and were cancelled instead of trading."
            )
        life = float(np.median([o["lifetime_s"] for o in withdrawn]))
        near = [
            o for o in withdrawn if o["distance_ticks"] is not None and o["distance_ticks"] <= 2
        ]
        return "spoofing", (
            f"{len(withdrawn)} large orders ({len(near)} at or near the touch, mostly {side}) "
            f"were cancelled after a median {life:.1f} s without trading."
        )
    sweeps = [s for f in by_kind.get("sweeps", []) for s in f.get("sweeps", [])]
    if len(sweeps) >= 3:
        follow = []
        for s in sweeps:
            m0, m30 = s["mid_after"].get("0s"), s["mid_after"].get("30s")
            if m0 is not None and m30 is not None:
                sign = 1 if s["side"] == "buy" else -1
                follow.append(sign * (m30 - m0) * price_scale / real.tick_size)
        if follow and float(np.median(follow)) >= 1.0:
            return "momentum_ignition", (
                f"{len(sweeps)} orders swept past the touch and the mid kept moving their way "
                f"(median {float(np.median(follow)):.1f} ticks over the next 30 s)."
            )
    pump = _pump_and_dump(real)
    if pump is not None and by_kind.get("sweeps"):
        return "pump_and_dump", pump
    names = ", ".join(f["fact"] for f in facts)
    return "none", f"The diverged facts ({names}) show no order pattern of a known typology."


def _concurrent(orders: list[Mapping[str, Any]], side: str) -> int:
    """Most of ``orders`` on ``side`` resting at one time (from arrival and lifetime)."""
    spans = [
        (o["ts_ns"], o["ts_ns"] + int(o["lifetime_s"] * NS_PER_S))
        for o in orders
        if o["side"] == side and o["event"] == "order" and o["lifetime_s"] is not None
    ]
    best = 0
    for t, _ in spans:
        best = max(best, sum(1 for a, b in spans if a <= t < b))
    return best


def _pump_and_dump(real: Trajectory) -> str | None:
    """Aggressive buying up to the window's high, then aggressive selling after it."""
    grid = np.arange(real.start_ns, real.end_ns, 10 * NS_PER_S, dtype=np.int64)
    mid = real.mid_at(grid)
    if len(mid) < 6 or not np.isfinite(mid).all():
        return None
    peak = int(np.argmax(mid))
    rise = (mid[peak] - mid[0]) / real.tick_size
    fall = (mid[peak] - mid[-1]) / real.tick_size
    if rise < 3 or fall < rise / 3:
        return None
    t_peak = int(grid[peak])
    taking = real.aggressive.astype(bool) & (real.type != CANCEL)
    before, after = taking & (real.ts_ns < t_peak), taking & (real.ts_ns >= t_peak)
    buys_before = real.qty[before & (real.type == BID)].sum() / max(real.qty[before].sum(), 1)
    sells_after = real.qty[after & (real.type == ASK)].sum() / max(real.qty[after].sum(), 1)
    if buys_before < 0.55 or sells_after < 0.55:
        return None
    return (
        f"The mid rose {rise:.0f} ticks on {buys_before:.0%} aggressive buying, then fell "
        f"{fall:.0f} ticks on {sells_after:.0%} aggressive selling."
    )
