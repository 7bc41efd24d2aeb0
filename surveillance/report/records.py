"""Reading replay records: the facts the report knows, and one window record read defensively
(any field may be missing or null)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

# Facts in the detector's order (surveillance.detection.detector.DETECTION_FACTS), with a name and what
# one sample of the fact is. Unknown facts in a record are shown after these, by name.
FACT_INFO: dict[str, tuple[str, str]] = {
    "spread": ("Spread", "spread in ticks after each order"),
    "spread_time_weighted": ("Spread, time-weighted", "spread in ticks, weighted by its duration"),
    "volatility": ("Volatility", "per-minute realized volatility of 5-second mid returns"),
    "mean_order_volume": ("Mean order volume", "per-minute mean size of new limit orders"),
    "aggressive_order_ratio": (
        "Aggressive order ratio",
        "per-minute share of limit orders marketable on arrival",
    ),
    "buy_order_ratio": ("Buy order ratio", "per-minute bids / (bids + asks)"),
    "cancel_ratio": ("Cancel ratio", "per-minute cancels / all orders"),
    "return_1m": ("1-minute return", "log mid-price return over one minute"),
    "inter_arrival": ("Inter-arrival time", "log10(1 + microseconds) between orders"),
}
DIVERGED_Z = -2.0  # the detector's default cut (Verdict.diverged)
SEVERITY_ORDER = {"high": 3, "medium": 2, "low": 1, "none": 0}


def _num(x: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, inf, strings, bools)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list:
    return list(x) if isinstance(x, list | tuple) else []


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _fact_name(fact: str) -> str:
    return FACT_INFO.get(fact, (fact.replace("_", " "), ""))[0]


def _fact_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [f for f in FACT_INFO if f in names] + sorted(names - set(FACT_INFO))


class _Window:
    """One record, read defensively, with what the charts need."""

    def __init__(self, index: int, rec: dict) -> None:
        self.index = index
        self.rec = rec
        self.anchor = f"w{index}"
        self.instrument = str(rec.get("instrument", "?"))
        self.start = _parse_time(rec.get("window_start"))
        self.end = _parse_time(rec.get("window_end"))
        self.score = _num(rec.get("score"))
        self.p_value = _num(rec.get("p_value"))
        self.threshold = _num(rec.get("threshold"))
        self.alert = rec.get("alert") is True
        sev = rec.get("severity")
        self.severity = sev if sev in SEVERITY_ORDER else ("medium" if self.alert else "none")
        self.facts = {str(k): _dict(v) for k, v in _dict(rec.get("facts")).items()}
        self.diverged = [str(f) for f in _list(rec.get("diverged"))]
        self.baselines = _dict(rec.get("baselines"))
        self.evidence = _dict(rec.get("evidence"))
        ns0, ns1 = rec.get("window_start_ns"), rec.get("window_end_ns")
        # position on the time axis, in seconds: from the ISO times first (they carry the date;
        # LOBSTER nanoseconds count from midnight), else the nanoseconds, else the record order
        ns = [v for v in (ns0, ns1) if isinstance(v, int) and not isinstance(v, bool)]
        if self.start is not None:
            self.t0 = self.start.replace(tzinfo=dt.UTC).timestamp()
        elif len(ns) == 2:
            self.t0 = ns[0] / 1e9
        else:
            self.t0 = float(index) * 1500.0
        if self.start is not None and self.end is not None:
            self.t1 = self.t0 + (self.end - self.start).total_seconds()
        elif len(ns) == 2:
            self.t1 = self.t0 + (ns[1] - ns[0]) / 1e9
        else:
            self.t1 = self.t0 + 1500.0
        if self.t1 <= self.t0:
            self.t1 = self.t0 + 1.0

    @property
    def label(self) -> str:
        """``10:00–10:25``; the raw strings when they are not ISO times."""
        if self.start is None:
            return f"{self.rec.get('window_start', '?')} – {self.rec.get('window_end', '?')}"
        end = self.end.strftime("%H:%M") if self.end is not None else "?"
        return f"{self.start:%H:%M}–{end}"

    @property
    def day(self) -> str:
        return f"{self.start:%Y-%m-%d}" if self.start is not None else ""

    def z(self, fact: str) -> float | None:
        return _num(self.facts.get(fact, {}).get("z"))

    def top_diverged(self, n: int = 3) -> list[tuple[str, float | None]]:
        return [(f, self.z(f)) for f in self.diverged[:n]]
