"""Order-level evidence (surveillance.detection.orders) on small hand-made windows, and its
journey into the v2 alert."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

import numpy as np

from alerts.schema import build_alert, to_v1, validate_alert
from simulator.book import OrderBook
from simulator.trajectory import trajectory_from_events
from simulator.types import BookEvent, EventKind, Side
from surveillance.detection.orders import order_evidence
from surveillance.detection.pipeline import WindowDecision, WindowScore

NS = 1_000_000_000
MS = 1_000_000
T0 = 34_200 * NS
BID, ASK = Side.BID, Side.ASK


def book() -> OrderBook:
    b = OrderBook("X")
    for i in range(5):
        b.apply(BookEvent(0, EventKind.ADD, 1 + i, 100, 1_000_000 - 100 * i, BID, "X"))
        b.apply(BookEvent(0, EventKind.ADD, 11 + i, 100, 1_000_100 + 100 * i, ASK, "X"))
    return b


def background(n: int = 400) -> list[BookEvent]:
    """Ordinary flow: small orders behind the touch, each cancelled 3 s later."""
    out = []
    for i in range(n):
        t = T0 + i * 150 * MS
        side = BID if i % 2 else ASK
        price = 999_700 if side == BID else 1_000_400
        out.append(BookEvent(t, EventKind.ADD, 1000 + i, 100, price, side, "X"))
        out.append(BookEvent(t + 3 * NS, EventKind.DELETE, 1000 + i, 100, price, side, "X"))
    return out


def null_with_cut(shares: float) -> SimpleNamespace:
    """A stand-in for SimulationNull: every tail fact cut at ``shares``."""
    pooled = (np.full(1000, np.log10(shares)), None)
    fact = SimpleNamespace(pooled=pooled, floor=None)
    return SimpleNamespace(per_fact=dict.fromkeys(("large_orders", "large_cancels"), fact))


def evidence_of(events, diverged):
    events = sorted(events, key=lambda e: e.ts_ns)
    real = trajectory_from_events(book(), events, T0, T0 + 300 * NS, 100)
    return order_evidence(real, diverged, null=null_with_cut(150), events=events)


def test_layered_orders_are_listed_with_their_life_and_called_layering() -> None:
    layers = []
    for k in range(4):  # four large asks stacked above the touch, withdrawn together
        price = 1_000_100 + 100 * k
        layers.append(BookEvent(T0 + 10 * NS, EventKind.ADD, 9000 + k, 5000, price, ASK, "X"))
        layers.append(BookEvent(T0 + 16 * NS, EventKind.DELETE, 9000 + k, 5000, price, ASK, "X"))
    ev = evidence_of(background() + layers, ["large_orders", "large_cancels"])
    orders = ev.facts[0]["orders"]
    assert ev.facts[0]["total"] == 4 and ev.facts[0]["cut_shares"] == 150.0
    first = next(o for o in orders if o["order_id"] == 9000)
    assert first == {
        "order_id": 9000,
        "ts_ns": T0 + 10 * NS,
        "event": "order",
        "side": "ask",
        "price": 100.01,
        "size": 5000,
        "lifetime_s": 6.0,
        "distance_ticks": 0.0,
        "ended": "cancelled",
    }
    assert ev.typology == "layering", ev.reason
    assert "4 large ask orders on 4 price levels" in ev.reason


def test_bursts_of_fleeting_orders_read_as_quote_stuffing() -> None:
    stuffing = []
    for b in range(3):  # three bursts of 100 orders each cancelled within a millisecond
        t = T0 + (60 + 30 * b) * NS
        for i in range(100):
            oid = 20_000 + 1000 * b + i
            stuffing.append(BookEvent(t + i * 100_000, EventKind.ADD, oid, 100, 999_900, BID, "X"))
            stuffing.append(
                BookEvent(t + i * 100_000 + 50_000, EventKind.DELETE, oid, 100, 999_900, BID, "X")
            )
    ev = evidence_of(background() + stuffing, ["inter_arrival", "cancel_ratio"])
    bursts = ev.facts[0]["bursts"]
    assert len(bursts) == 3  # (a background message or two fall inside a burst)
    assert all(b["messages"] >= 200 and b["cancels"] >= 100 for b in bursts)
    assert ev.typology == "quote_stuffing"


def test_no_divergence_no_evidence_and_window_facts_say_so() -> None:
    assert evidence_of(background(), []).as_dict() == {
        "typology": {"label": "none", "reason": "No fact diverged."},
        "facts": [],
    }
    ev = evidence_of(background(), ["spread"])
    assert ev.facts[0]["kind"] == "window" and ev.typology == "none"


def test_the_v2_alert_carries_the_evidence_and_v1_consumers_get_v1() -> None:
    layers = [
        BookEvent(T0 + 10 * NS, EventKind.ADD, 9000, 5000, 1_000_100, ASK, "X"),
        BookEvent(T0 + 16 * NS, EventKind.DELETE, 9000, 5000, 1_000_100, ASK, "X"),
    ]
    ev = evidence_of(background() + layers, ["large_orders"]).as_dict()
    decision = WindowDecision(
        "X",
        T0,
        T0 + 300 * NS,
        "m-1",
        800,
        "event",
        WindowScore(
            score=4.0,
            p_value=0.01,
            alert=True,
            facts={"large_orders": 0.4, "spread": 0.9},
            diverged=("large_orders",),
            detail={
                "orders": ev,
                "facts": {"large_orders": {"z": -5.0, "null_mean": 0.99}},
                "simulation": {"faithful": False, "off": ["spread"], "spread_ratio": 0.05},
            },
        ),
    )
    alert = build_alert(decision, config_version="c", session_date=dt.date(2012, 6, 21))
    assert alert["schema_version"] == 2
    assert alert["evidence"][0]["orders"][0]["order_id"] == 9000
    assert alert["facts"][0]["z"] == -5.0 and alert["charts"] is None
    assert alert["simulation"] == {"faithful": False, "off": ["spread"], "spread_ratio": 0.05}
    old = to_v1(alert)
    validate_alert(old)
    assert old["schema_version"] == 1 and "evidence" not in old and "z" not in old["facts"][0]
    assert "simulation" not in old
    assert to_v1(old) == old
    # a decision without order evidence (scored before it existed) still makes a valid v2
    bare = dataclasses.replace(decision, verdict=dataclasses.replace(decision.verdict, detail={}))
    bare_alert = build_alert(bare, config_version="c")
    assert bare_alert["typology"]["label"] == "none"
    assert "simulation" not in bare_alert  # written only where the decision was checked
