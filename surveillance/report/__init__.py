"""The investigator's report of an offline replay: one self-contained HTML file.

``render_report(records, meta)`` turns the window records a replay writes to ``scores.jsonl``
(one dict per window) and the run's metadata into a single HTML document that opens offline:
inline CSS, inline SVG charts drawn here, a few lines of vanilla JavaScript to open and close
window details, and no fetched script, font or image. The output is a pure function of the
input (no clock, no randomness), so the same replay gives the same bytes.

The report reads like a case file:

1. what was replayed and with which model and calibration, and how the method works;
2. a summary: windows and alerts per instrument, the alerts ranked by score, and a day
   timeline per instrument (score against the threshold, the two baselines beneath);
3. a heatmap of every fact's z over the day (how unlike its own simulation the market was);
4. one section per window, alerts first and open: the real spread distribution against the
   simulated one (as in MarS Fig. 8), the real mid-price path against the rollout fan, and the
   facts table with each fact's simulation-versus-simulation null.

Any record field may be missing or null (a quiet window has no evidence): the report then says
"no data" in place of the chart rather than failing. All text from the input is escaped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from pathlib import Path
from string import Template
from typing import Any

# Facts in the detector's order (surveillance.detector.DETECTION_FACTS), with a name and what
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
MAX_PATH_POINTS = 300
HEATMAP_Z_LIMIT = 6.0
SEVERITY_ORDER = {"high": 3, "medium": 2, "low": 1, "none": 0}

# Colours: Okabe-Ito vermillion / blue for real / simulated (distinguishable with colour
# vision deficiencies), ColorBrewer RdBu for the diverging z scale.
REAL = "#d55e00"
SIM = "#0072b2"
SIM_DARK = "#0b3d66"
FAN_OUTER = "#d4e6f4"
FAN_INNER = "#9cc7e6"
NORMAL_BAR = "#8a9bb0"
SEVERITY_COLOUR = {"high": "#b2182b", "medium": "#e0632f", "low": "#f1a340", "none": NORMAL_BAR}
RDBU = (
    "#67001f",
    "#b2182b",
    "#d6604d",
    "#f4a582",
    "#fddbc7",
    "#f7f7f7",
    "#d1e5f0",
    "#92c5de",
    "#4393c3",
    "#2166ac",
    "#053061",
)


# ---------------------------------------------------------------------------- small helpers
def _num(x: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, inf, strings, bools)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(x: Any, digits: int = 3, signed: bool = False) -> str:
    v = _num(x)
    if v is None:
        return "–"
    text = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    if float(text) == 0:  # no "-0.0"
        text = text.replace("-", "+" if signed else "")
    return text.replace("-", "−")


def _fmt_p(x: Any) -> str:
    v = _num(x)
    if v is None:
        return "–"
    return f"{v:.1e}".replace("-", "−") if v < 0.001 else f"{v:.3f}"


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _c(x: float) -> str:
    """An SVG coordinate."""
    return f"{x:.1f}"


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


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    step = _nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    out, k = [], 0
    while first + k * step <= hi + step * 1e-9:
        out.append(round(first + k * step, 10))
        k += 1
    return out


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0


def _lerp_colour(stops: Sequence[str], t: float) -> str:
    """Colour at t in [0, 1] along evenly spaced hex stops."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    a, b = stops[i], stops[i + 1]
    rgb = [round(int(a[k : k + 2], 16) * (1 - f) + int(b[k : k + 2], 16) * f) for k in (1, 3, 5)]
    return "#" + "".join(f"{v:02x}" for v in rgb)


def _z_colour(z: float) -> str:
    return _lerp_colour(RDBU, (z + HEATMAP_Z_LIMIT) / (2 * HEATMAP_Z_LIMIT))


def _ink_on(fill: str) -> str:
    r, g, b = (int(fill[k : k + 2], 16) for k in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def _fact_name(fact: str) -> str:
    return FACT_INFO.get(fact, (fact.replace("_", " "), ""))[0]


def _fact_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [f for f in FACT_INFO if f in names] + sorted(names - set(FACT_INFO))


def downsample(t: Sequence[Any], y: Sequence[Any], max_points: int = MAX_PATH_POINTS) -> list:
    """At most ``max_points`` (t, y) pairs, keeping each bucket's lowest and highest point in
    time order, so that a spike in a long path survives. None/NaN values become gaps (None)."""
    pairs: list[tuple[float, float | None]] = []
    for a, b in zip(t, y, strict=False):
        ta = _num(a)
        if ta is not None:
            pairs.append((ta, _num(b)))
    if len(pairs) <= max_points:
        return pairs
    buckets = max(max_points // 2, 1)
    out: list[tuple[float, float | None]] = []
    for k in range(buckets):
        chunk = pairs[k * len(pairs) // buckets : (k + 1) * len(pairs) // buckets]
        valid = [(ta, yb) for ta, yb in chunk if yb is not None]
        if not valid:
            out.append((chunk[0][0], None))
            continue
        lo = min(valid, key=lambda p: p[1])
        hi = max(valid, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


# ---------------------------------------------------------------------------- window model
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


# ---------------------------------------------------------------------------- SVG pieces
def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(label)}" class="chart">{body}</svg>'
    )


def _text(
    x: float, y: float, s: str, anchor: str = "middle", cls: str = "", extra: str = ""
) -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{_c(x)}" y="{_c(y)}" text-anchor="{anchor}"{c}{extra}>{_e(s)}</text>'


def _no_data(width: int, height: int, what: str) -> str:
    body = (
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" class="nodata-box"/>'
        + _text(width / 2, height / 2, f"no data: {what}", cls="nodata")
    )
    return _svg(width, height, body, f"no data: {what}")


def _y_axis(
    ticks: list[float], ymap: Callable[[float], float], x0: float, x1: float, fmt: Callable
) -> str:
    parts = []
    for t in ticks:
        y = ymap(t)
        parts.append(f'<line x1="{_c(x0)}" x2="{_c(x1)}" y1="{_c(y)}" y2="{_c(y)}" class="grid"/>')
        parts.append(_text(x0 - 6, y + 4, fmt(t), anchor="end", cls="tick"))
    return "".join(parts)


def _path(points: Sequence[tuple[float, float | None]], xmap, ymap) -> str:
    """An SVG path through points, broken at None values."""
    d, pen = [], False
    for x, y in points:
        if y is None:
            pen = False
            continue
        d.append(f"{'L' if pen else 'M'}{_c(xmap(x))},{_c(ymap(y))}")
        pen = True
    return "".join(d)


def _band(lo: Sequence[tuple], hi: Sequence[tuple], xmap, ymap) -> str:
    """Closed path between two curves on the same x, split where either is missing."""
    runs: list[list[tuple]] = []
    cur: list[tuple] = []
    for (x, a), (_, b) in zip(lo, hi, strict=False):
        if a is None or b is None:
            if cur:
                runs.append(cur)
            cur = []
        else:
            cur.append((x, a, b))
    if cur:
        runs.append(cur)
    out = []
    for run in runs:
        top = [f"{_c(xmap(x))},{_c(ymap(b))}" for x, _, b in run]
        bottom = [f"{_c(xmap(x))},{_c(ymap(a))}" for x, a, _ in reversed(run)]
        out.append("M" + "L".join(top + bottom) + "Z")
    return "".join(out)


# ---------------------------------------------------------------------------- charts
def spread_chart(real: Any, sim: Any, ovl_text: str, width: int = 560, height: int = 290) -> str:
    """Real versus pooled simulated spread pmf as paired bars (MarS Fig. 8)."""
    pmfs = []
    for ev in (real, sim):
        ev = _dict(ev)
        pmf: dict[int, float] = {}
        for k, w in zip(_list(ev.get("ticks")), _list(ev.get("weight")), strict=False):
            kv, wv = _num(k), _num(w)
            if kv is not None and wv is not None and wv > 0:
                pmf[round(kv)] = pmf.get(round(kv), 0.0) + wv
        pmfs.append(pmf)
    if not pmfs[0] and not pmfs[1]:
        return _no_data(width, height, "spread distribution")
    keys = sorted(set(pmfs[0]) | set(pmfs[1]))
    # trim the far tail where both sides have less than 0.1% left, into an overflow bin
    cutoff = keys[-1]
    for k in keys:
        if all(sum(w for j, w in p.items() if j > k) < 0.001 for p in pmfs if p):
            cutoff = k
            break
    lo = keys[0]
    span = cutoff - lo + 1
    width_ticks = max(1, math.ceil(span / 40))
    nbins = math.ceil(span / width_ticks)
    overflow = cutoff < keys[-1]
    bins = nbins + (1 if overflow else 0)
    mass = [[0.0] * bins for _ in pmfs]
    for side, p in enumerate(pmfs):
        for k, w in p.items():
            b = nbins if k > cutoff else (k - lo) // width_ticks
            mass[side][b] += w
    ml, mr, mt, mb = 56, 14, 50, 46
    pw, ph = width - ml - mr, height - mt - mb
    ymax = max(max(m) for m in mass) * 1.1 or 1.0
    yt = _ticks(0, ymax, 4)
    ymax = max(ymax, yt[-1])

    def ymap(v: float) -> float:
        return mt + ph * (1 - v / ymax)

    bw = pw / bins
    parts = [_y_axis(yt, ymap, ml, ml + pw, lambda v: f"{v:.{_decimals(yt[1] - yt[0])}f}")]
    for b in range(bins):
        first = lo + b * width_ticks
        name = (
            f"> {cutoff} ticks"
            if b == nbins
            else (
                f"{first} ticks" if width_ticks == 1 else f"{first}–{first + width_ticks - 1} ticks"
            )
        )
        for side, colour in ((0, REAL), (1, SIM)):
            v = mass[side][b]
            if v <= 0:
                continue
            x = ml + b * bw + bw * (0.1 + 0.4 * side)
            tip = f"{name}: {'real' if side == 0 else 'simulated'} {v:.3f}"
            parts.append(
                f'<rect x="{_c(x)}" y="{_c(ymap(v))}" width="{_c(bw * 0.4)}" '
                f'height="{_c(ymap(0) - ymap(v))}" fill="{colour}"><title>{_e(tip)}</title></rect>'
            )
    # x labels: about 8 of them
    every = max(1, math.ceil(bins / 8))
    for b in range(0, bins, every):
        label = f">{cutoff}" if b == nbins else str(lo + b * width_ticks)
        parts.append(_text(ml + (b + 0.5) * bw, mt + ph + 16, label, cls="tick"))
    if overflow and nbins % every:
        parts.append(_text(ml + (nbins + 0.5) * bw, mt + ph + 16, f">{cutoff}", cls="tick"))
    parts.append(
        f'<line x1="{ml}" x2="{ml + pw}" y1="{_c(ymap(0))}" y2="{_c(ymap(0))}" class="axis"/>'
    )
    parts.append(_text(ml + pw / 2, height - 8, "spread (ticks)", cls="axis-label"))
    parts.append(
        _text(
            14,
            mt + ph / 2,
            "share of time",
            cls="axis-label",
            extra=f' transform="rotate(-90 14 {_c(mt + ph / 2)})"',
        )
    )
    parts.append(_text(ml, 16, ovl_text, anchor="start", cls="chart-note"))
    parts.append(_legend(ml, 26, [("real window", REAL)]))
    parts.append(_legend(ml + 110, 26, [("simulated, all rollouts pooled", SIM)]))
    return _svg(width, height, "".join(parts), "spread distribution, real versus simulated")


def _legend(x: float, y: float, items: Sequence[tuple[str, str]], kind: str = "box") -> str:
    parts, yy = [], y
    for name, colour in items:
        if kind == "line":
            parts.append(
                f'<line x1="{_c(x)}" x2="{_c(x + 16)}" y1="{_c(yy + 5)}" y2="{_c(yy + 5)}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
        else:
            parts.append(f'<rect x="{_c(x)}" y="{_c(yy)}" width="12" height="10" fill="{colour}"/>')
        parts.append(_text(x + 20, yy + 9, name, anchor="start", cls="legend"))
        yy += 15
    return "".join(parts)


def price_chart(real: Any, fan: Any, width: int = 560, height: int = 290) -> str:
    """Real mid-price path over the rollouts' quantile fan (q05-q95, q25-q75, median)."""
    real, fan = _dict(real), _dict(fan)
    rpath = downsample(_list(real.get("t_s")), _list(real.get("mid")))
    ft = _list(fan.get("t_s"))
    q = {k: downsample(ft, _list(fan.get(k))) for k in ("q05", "q25", "q50", "q75", "q95")}
    # the quantile curves must share x after downsampling: use plain striding for the fan
    if len(ft) > MAX_PATH_POINTS:
        step = math.ceil(len(ft) / MAX_PATH_POINTS)
        idx = list(range(0, len(ft), step))
        q = {
            k: [
                (_num(ft[i]), _num(_list(fan.get(k))[i]) if i < len(_list(fan.get(k))) else None)
                for i in idx
            ]
            for k in q
        }
        q = {k: [(a, b) for a, b in v if a is not None] for k, v in q.items()}
    ys = [y for _, y in rpath if y is not None] + [
        y for v in q.values() for _, y in v if y is not None
    ]
    xs = [x for x, y in rpath if y is not None] + [
        x for v in q.values() for x, y in v if y is not None
    ]
    if not ys:
        return _no_data(width, height, "price path")
    ml, mr, mt, mb = 70, 14, 34, 46
    pw, ph = width - ml - mr, height - mt - mb
    ylo, yhi = min(ys), max(ys)
    pad = max((yhi - ylo) * 0.08, 0.01)
    ylo, yhi = ylo - pad, yhi + pad
    yt = _ticks(ylo, yhi, 5)
    yt = [t for t in yt if ylo <= t <= yhi] or [ylo]
    xlo, xhi = 0.0, max(max(xs), 60.0)
    xt = _ticks(xlo / 60, xhi / 60, 6)

    def xmap(s: float) -> float:
        return ml + pw * (s - xlo) / (xhi - xlo)

    def ymap(v: float) -> float:
        return mt + ph * (1 - (v - ylo) / (yhi - ylo))

    ydec = max(2, _decimals(yt[1] - yt[0])) if len(yt) > 1 else 2
    parts = [_y_axis(yt, ymap, ml, ml + pw, lambda v: f"${v:,.{ydec}f}")]
    for t in xt:
        if t * 60 <= xhi:
            parts.append(_text(xmap(t * 60), mt + ph + 16, f"{t:g}", cls="tick"))
    parts.append(
        f'<line x1="{ml}" x2="{ml + pw}" y1="{_c(mt + ph)}" y2="{_c(mt + ph)}" class="axis"/>'
    )
    if q["q05"] and q["q95"]:
        parts.append(f'<path d="{_band(q["q05"], q["q95"], xmap, ymap)}" fill="{FAN_OUTER}"/>')
    if q["q25"] and q["q75"]:
        parts.append(f'<path d="{_band(q["q25"], q["q75"], xmap, ymap)}" fill="{FAN_INNER}"/>')
    if q["q50"]:
        parts.append(
            f'<path d="{_path(q["q50"], xmap, ymap)}" fill="none" stroke="{SIM_DARK}" '
            'stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
    if rpath:
        parts.append(
            f'<path d="{_path(rpath, xmap, ymap)}" fill="none" stroke="{REAL}" stroke-width="2"/>'
        )
    parts.append(_text(ml + pw / 2, height - 8, "minutes since window start", cls="axis-label"))
    parts.append(
        _text(
            14,
            mt + ph / 2,
            "mid price ($)",
            cls="axis-label",
            extra=f' transform="rotate(-90 14 {_c(mt + ph / 2)})"',
        )
    )
    legend = [("real mid price", REAL, "line"), ("simulated median", SIM_DARK, "line")]
    parts.append(_legend(ml + 4, 6, [(n, c) for n, c, _ in legend[:1]], kind="line"))
    parts.append(_legend(ml + 134, 6, [(n, c) for n, c, _ in legend[1:]], kind="line"))
    parts.append(_legend(ml + 284, 6, [("simulated 25–75%", FAN_INNER)]))
    parts.append(_legend(ml + 414, 6, [("5–95%", FAN_OUTER)]))
    if not rpath:
        parts.append(_text(ml + pw / 2, mt + 16, "no real price path", cls="nodata"))
    return _svg(width, height, "".join(parts), "real mid price against the rollout fan")


def _day_axis(wins: Sequence[_Window]) -> tuple[float, float, list[tuple[float, str]]]:
    """Seconds range of the day axis and its labelled ticks (clock time where known)."""
    lo, hi = min(w.t0 for w in wins), max(w.t1 for w in wins)
    ref = next((w for w in wins if w.start is not None), None)
    ticks: list[tuple[float, str]] = []
    span = hi - lo
    step = next((s for s in (900, 1800, 3600, 7200, 14400, 28800) if span / s <= 9), 86400)
    clock_fmt = "%H:%M" if span <= 86400 else "%m-%d %H:%M"
    if ref is not None and ref.start is not None:
        clock0 = ref.start - dt.timedelta(seconds=ref.t0 - lo)
        midnight = clock0.replace(hour=0, minute=0, second=0, microsecond=0)
        first = math.ceil((clock0 - midnight).total_seconds() / step) * step
        s = first
        while True:
            pos = lo + (s - (clock0 - midnight).total_seconds())
            if pos > hi:
                break
            label = midnight + dt.timedelta(seconds=s)
            ticks.append((pos, label.strftime(clock_fmt)))
            s += step
    else:
        for i, w in enumerate(wins):
            if i % max(1, len(wins) // 8) == 0:
                ticks.append((w.t0, f"#{w.index}"))
    return lo, hi, ticks


def timeline_chart(wins: Sequence[_Window], width: int = 1140) -> str:
    """Score per window with the threshold, alert windows shaded; the baselines beneath."""
    lo, hi, xt = _day_axis(wins)
    ml, mr = 72, 16
    pw = width - ml - mr

    def xmap(s: float) -> float:
        return ml + pw * (s - lo) / (hi - lo)

    panels = [
        ("score", "detector score", 190, lambda w: w.score),
        (
            "historical_diff",
            "baseline: historical Diff (1 − OVL vs earlier windows)",
            80,
            lambda w: _num(w.baselines.get("historical_diff")),
        ),
        (
            "spread_zscore",
            "baseline: spread z-score rule",
            80,
            lambda w: _num(w.baselines.get("spread_zscore")),
        ),
    ]
    gap, top = 30, 24
    height = top + sum(p[2] for p in panels) + gap * (len(panels) - 1) + 34
    parts = []
    # alert windows shaded across all panels
    for w in wins:
        if w.alert:
            x0, x1 = xmap(w.t0), xmap(w.t1)
            parts.append(
                f'<rect x="{_c(x0)}" y="{top - 6}" width="{_c(x1 - x0)}" '
                f'height="{height - top - 28}" class="alert-band"/>'
            )
    y0 = top
    for key, title, ph, get in panels:
        vals = [get(w) for w in wins]
        present = [v for v in vals if v is not None]
        thresholds = (
            [w.threshold for w in wins if w.threshold is not None] if key == "score" else []
        )
        vmax = max([*present, *thresholds, 0.0])
        vmin = min([*present, *thresholds, 0.0])
        if vmax == vmin:
            vmax = vmin + 1.0
        yt = _ticks(vmin, vmax, 4 if ph > 100 else 2)
        vmin, vmax = min(vmin, yt[0]), max(vmax, yt[-1])

        def ymap(v: float, y0=y0, ph=ph, vmin=vmin, vmax=vmax) -> float:
            return y0 + ph * (1 - (v - vmin) / (vmax - vmin))

        dec = _decimals(yt[1] - yt[0]) if len(yt) > 1 else 1
        parts.append(
            _y_axis(yt, ymap, ml, ml + pw, lambda v, dec=dec: f"{v:.{dec}f}".replace("-", "−"))
        )
        parts.append(_text(ml, y0 - 8, title, anchor="start", cls="panel-title"))
        base = ymap(0.0)
        for w, v in zip(wins, vals, strict=True):
            x0, x1 = xmap(w.t0), xmap(w.t1)
            bw = min(max((x1 - x0) * 0.8, 1.0), 80.0)
            xc = (x0 + x1) / 2
            tip = f"{w.instrument} {w.day} {w.label}: {title} {_fmt(v)}"
            if key == "score":
                tip += f", p {_fmt_p(w.p_value)}, threshold {_fmt(w.threshold)}"
                tip += ", ALERT" if w.alert else ""
            if v is None:
                parts.append(
                    f'<a href="#{w.anchor}"><text x="{_c(xc)}" y="{_c(base - 3)}" '
                    f'text-anchor="middle" class="missing">×<title>{_e(tip)} (not scored)</title>'
                    "</text></a>"
                )
                continue
            colour = SEVERITY_COLOUR[w.severity] if (w.alert and key == "score") else NORMAL_BAR
            if key != "score":
                colour = "#a7b4c4"
            ytop, ybot = (ymap(v), base) if v >= 0 else (base, ymap(v))
            parts.append(
                f'<a href="#{w.anchor}"><rect x="{_c(xc - bw / 2)}" y="{_c(ytop)}" '
                f'width="{_c(bw)}" height="{_c(max(ybot - ytop, 0.5))}" fill="{colour}">'
                f"<title>{_e(tip)}</title></rect></a>"
            )
        parts.append(
            f'<line x1="{ml}" x2="{ml + pw}" y1="{_c(base)}" y2="{_c(base)}" class="axis"/>'
        )
        if key == "score":
            for w in wins:
                if w.threshold is not None:
                    yy = ymap(w.threshold)
                    parts.append(
                        f'<line x1="{_c(xmap(w.t0))}" x2="{_c(xmap(w.t1))}" y1="{_c(yy)}" '
                        f'y2="{_c(yy)}" class="threshold"><title>threshold {_fmt(w.threshold)}'
                        "</title></line>"
                    )
        y0 += ph + gap
    for pos, label in xt:
        parts.append(_text(xmap(pos), height - 16, label, cls="tick"))
        parts.append(
            f'<line x1="{_c(xmap(pos))}" x2="{_c(xmap(pos))}" y1="{height - 30}" '
            f'y2="{height - 26}" class="axis"/>'
        )
    legend_x = ml + pw - 430
    parts.append(_legend(legend_x, 2, [("normal window", NORMAL_BAR)]))
    parts.append(
        _legend(legend_x + 110, 2, [("alert (bar colour: severity)", SEVERITY_COLOUR["high"])])
    )
    parts.append(
        f'<line x1="{legend_x + 300}" x2="{legend_x + 324}" y1="7" y2="7" class="threshold"/>'
        + _text(legend_x + 330, 11, "alert threshold", anchor="start", cls="legend")
    )
    return _svg(width, height, "".join(parts), "score per window over the day")


def heatmap_chart(wins: Sequence[_Window], width: int = 1140) -> str:
    """Facts x windows, coloured by z (red: the real window is less like its simulation than
    the simulation is like itself)."""
    facts = _fact_order(f for w in wins for f in w.facts)
    if not facts:
        return _no_data(width, 80, "no fact overlaps in these windows")
    ml, mr, mt = 190, 16, 44
    cw = min(64.0, (width - ml - mr) / len(wins))
    ch = 24
    height = mt + ch * len(facts) + 74
    show_numbers = cw >= 34
    parts = []
    every = max(1, math.ceil(34 / cw)) if cw < 34 else 1
    for j, w in enumerate(wins):
        x = ml + j * cw
        if j % every == 0:
            parts.append(
                _text(
                    x + cw / 2,
                    mt - 8,
                    w.start.strftime("%H:%M") if w.start else f"#{w.index}",
                    cls="tick",
                )
            )
        if w.alert:
            parts.append(
                _text(
                    x + cw / 2,
                    mt - 24,
                    "▼",
                    cls="alert-mark",
                    extra=f' style="fill:{SEVERITY_COLOUR[w.severity]}"',
                )
            )
    for i, fact in enumerate(facts):
        y = mt + i * ch
        parts.append(_text(ml - 8, y + ch / 2 + 4, _fact_name(fact), anchor="end", cls="row-label"))
        for j, w in enumerate(wins):
            x = ml + j * cw
            ev = w.facts.get(fact, {})
            z = _num(ev.get("z"))
            tip = (
                f"{_fact_name(fact)} · {w.instrument} {w.day} {w.label}\n"
                f"OVL real vs sim {_fmt(ev.get('ovl'))}; sim vs sim {_fmt(ev.get('null_mean'))}"
                f" ± {_fmt(ev.get('null_std'))}\nz {_fmt(z, 2)}, p {_fmt_p(ev.get('p_value'))}"
            )
            fill = _z_colour(z) if z is not None else "#e4e4e4"
            diverged = fact in w.diverged
            stroke = (
                ' stroke="#000" stroke-width="2"' if diverged else ' stroke="#fff" stroke-width="1"'
            )
            cell = (
                f'<rect x="{_c(x)}" y="{_c(y)}" width="{_c(cw)}" height="{ch}" fill="{fill}"{stroke}>'
                f"<title>{_e(tip)}</title></rect>"
            )
            if diverged:  # a white inner ring keeps the outline visible on the darkest cells
                cell += (
                    f'<rect x="{_c(x + 2.5)}" y="{_c(y + 2.5)}" width="{_c(cw - 5)}" '
                    f'height="{ch - 5}" fill="none" stroke="#fff" stroke-width="1" '
                    'pointer-events="none"/>'
                )
            if show_numbers:
                label = _fmt(z, 1)
                cell += _text(
                    x + cw / 2,
                    y + ch / 2 + 4,
                    label,
                    cls="cell",
                    extra=f' style="fill:{_ink_on(fill)}"',
                )
            parts.append(f'<a href="#{w.anchor}">{cell}</a>')
    # legend: the colour ramp with z ticks
    ly = mt + ch * len(facts) + 26
    lw, lx = 300, ml
    steps = 60
    for k in range(steps):
        z = -HEATMAP_Z_LIMIT + 2 * HEATMAP_Z_LIMIT * (k + 0.5) / steps
        parts.append(
            f'<rect x="{_c(lx + k * lw / steps)}" y="{ly}" width="{_c(lw / steps + 0.3)}" '
            f'height="12" fill="{_z_colour(z)}"/>'
        )
    for z in (-6, -4, -2, 0, 2, 4, 6):
        xx = lx + lw * (z + HEATMAP_Z_LIMIT) / (2 * HEATMAP_Z_LIMIT)
        lab = ("≤ " if z == -6 else "≥ " if z == 6 else "") + f"{z}".replace("-", "−")
        parts.append(_text(xx, ly + 26, lab, cls="tick"))
    parts.append(
        _text(
            lx + lw + 14,
            ly + 10,
            "z of the real-vs-simulation overlap against the simulation-vs-simulation null "
            "(red: less alike than the model is with itself)",
            anchor="start",
            cls="legend",
        )
    )
    parts.append(
        f'<rect x="{lx + lw + 14}" y="{ly + 18}" width="12" height="10" fill="#fff" '
        'stroke="#000" stroke-width="2"/>'
        + _text(
            lx + lw + 32,
            ly + 27,
            f"diverged fact (z < {DIVERGED_Z:g})",
            anchor="start",
            cls="legend",
        )
        + f'<rect x="{lx + lw + 190}" y="{ly + 18}" width="12" height="10" fill="#e4e4e4"/>'
        + _text(lx + lw + 208, ly + 27, "no value", anchor="start", cls="legend")
        + _text(lx + lw + 280, ly + 27, "▼ alert window", anchor="start", cls="legend")
    )
    return _svg(width, height, "".join(parts), "z of each fact in each window")


def null_strip(ev: dict, lo: float, hi: float, width: int = 170, height: int = 22) -> str:
    """The simulation-vs-simulation OVLs (range, interquartile box, mean) and the real OVL."""
    null = sorted(v for v in (_num(x) for x in _list(ev.get("null"))) if v is not None)
    ovl = _num(ev.get("ovl"))
    if not null and ovl is None:
        return ""

    def xmap(v: float) -> float:
        return 4 + (width - 8) * (min(max(v, lo), hi) - lo) / (hi - lo)

    parts = [
        f'<line x1="4" x2="{width - 4}" y1="{height / 2}" y2="{height / 2}" class="strip-axis"/>'
    ]
    if null:
        q1 = null[len(null) // 4]
        q3 = null[(3 * len(null)) // 4]
        parts.append(
            f'<line x1="{_c(xmap(null[0]))}" x2="{_c(xmap(null[-1]))}" y1="{height / 2}" '
            f'y2="{height / 2}" stroke="{SIM}" stroke-width="1.5"/>'
            f'<rect x="{_c(xmap(q1))}" y="5" width="{_c(max(xmap(q3) - xmap(q1), 1.5))}" '
            f'height="{height - 10}" fill="{FAN_INNER}" stroke="{SIM}"/>'
        )
        mean = _num(ev.get("null_mean"))
        if mean is not None:
            parts.append(
                f'<line x1="{_c(xmap(mean))}" x2="{_c(xmap(mean))}" y1="3" y2="{height - 3}" '
                f'stroke="{SIM_DARK}" stroke-width="2"/>'
            )
    if ovl is not None:
        x = xmap(ovl)
        parts.append(
            f'<path d="M{_c(x)},3L{_c(x + 5)},{height / 2}L{_c(x)},{height - 3}L{_c(x - 5)},'
            f'{height / 2}Z" fill="{REAL}" stroke="#fff" stroke-width="0.8"/>'
        )
    tip = f"null: {len(null)} rollouts, min {_fmt(null[0] if null else None)}, max {_fmt(null[-1] if null else None)}; real {_fmt(ovl)}"
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="strip" '
        f'role="img" aria-label="{_e(tip)}"><title>{_e(tip)}</title>{"".join(parts)}</svg>'
    )


# ---------------------------------------------------------------------------- HTML sections
CSS = Template("""
:root { --ink:#1d2430; --muted:#5b6573; --line:#d8dde4; --panel:#f6f8fa; --real:$real;
        --sim:$sim; --alert:#b2182b; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; font: 15px/1.5 -apple-system, "Segoe UI",
       Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 2px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 16px; }
.kv { display:grid; grid-template-columns: 190px 1fr; gap: 3px 16px; margin: 0; }
.kv dt { color: var(--muted); } .kv dd { margin:0; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.cmd { display:block; background: var(--panel); padding: 6px 10px; border-radius: 4px;
       overflow-wrap: anywhere; }
.method { background: var(--panel); border-left: 4px solid var(--sim); padding: 10px 16px;
          margin: 16px 0; }
.method p { margin: 6px 0; } .method ul { margin: 6px 0; padding-left: 20px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: middle; }
th { background: var(--panel); font-weight: 600; border-bottom: 1px solid #b9c1cc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tr.diverged td { background: #fdeee6; } tr.diverged td:first-child { font-weight: 600;
   box-shadow: inset 4px 0 0 var(--real); }
.badge { display:inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
         font-weight: 600; line-height: 20px; color:#fff; }
.badge.none { background: #e6e9ee; color: var(--muted); }
.badge.low { background: $low; color:#1d2430; } .badge.medium { background: $medium; }
.badge.high { background: $high; }
.tag { display:inline-block; font-size: 12px; padding: 0 6px; border-radius: 3px;
       background:#fdeee6; color:#8a3a0c; border:1px solid #f2c5ad; margin: 1px 2px; }
.muted { color: var(--muted); } .small { font-size: 13px; }
svg.chart { display:block; max-width:100%; height:auto; }
svg.chart text { font-family: inherit; fill: var(--ink); }
svg .tick { font-size: 11px; fill: var(--muted); } svg .legend { font-size: 12px; }
svg .axis-label { font-size: 12px; fill: var(--muted); }
svg .panel-title, svg .chart-note { font-size: 12.5px; font-weight: 600; white-space: pre; }
svg .row-label { font-size: 12.5px; } svg .cell { font-size: 11px; pointer-events: none; }
svg .grid { stroke: #e8ebef; stroke-width: 1; } svg .axis { stroke: #8b95a3; stroke-width: 1; }
svg .threshold { stroke: #1d2430; stroke-width: 1.6; stroke-dasharray: 6 3; }
svg .alert-band { fill: #fbe3dc; } svg .alert-mark { font-size: 12px; }
svg .missing { font-size: 14px; fill: var(--muted); }
svg .nodata-box { fill: var(--panel); stroke: var(--line); stroke-dasharray: 4 3; }
svg .nodata { font-size: 13px; fill: var(--muted); }
svg.strip { display:block; } svg .strip-axis { stroke: var(--line); }
.charts { display:grid; grid-template-columns: 1fr 1fr; gap: 14px; margin: 10px 0; }
.figure { border: 1px solid var(--line); border-radius: 4px; padding: 6px 6px 2px; }
.figure h4 { margin: 2px 4px 0; font-size: 13.5px; }
.figure p { margin: 0 4px 4px; font-size: 12.5px; color: var(--muted); }
details.window { border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; }
details.window.alert { border-color: #e5a08f; border-left: 5px solid var(--alert); }
details.window > summary { cursor: pointer; padding: 8px 12px; background: var(--panel);
   border-radius: 6px; display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; }
details.window[open] > summary { border-bottom: 1px solid var(--line);
   border-radius: 6px 6px 0 0; }
details.window > summary::-webkit-details-marker { display: none; }
details.window > summary::before { content: "▸"; color: var(--muted); width: 10px; }
details.window[open] > summary::before { content: "▾"; }
details.window > .body { padding: 6px 14px 10px; }
summary .when { font-weight: 600; min-width: 250px; } summary .score { min-width: 150px; }
.toolbar { margin: 8px 0; } .toolbar button { font: inherit; font-size: 13px; padding: 3px 10px;
   border: 1px solid #b9c1cc; border-radius: 4px; background: #fff; cursor: pointer; }
.nodata-line { background: var(--panel); border: 1px dashed var(--line); padding: 8px 12px;
   color: var(--muted); }
.stats { display:flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; }
.stats > div { border: 1px solid var(--line); border-radius: 4px; padding: 3px 10px;
   min-width: 110px; }
.stats span { display:block; font-size: 11.5px; color: var(--muted); }
.stats b { font-variant-numeric: tabular-nums; font-size: 14.5px; }
table.facts { width: 100%; } table.facts td:first-child { width: 46%; }
a { color: #0a5a9c; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line);
         padding-top: 8px; }
@media print {
  body { font-size: 11pt; } main { max-width: none; padding: 0; }
  .toolbar { display: none; } h2 { break-after: avoid; }
  details.window > summary { background: none; }
  .charts { grid-template-columns: 1fr; }
  .figure, tr, svg.chart, .stats, summary { break-inside: avoid; }
  details.window { break-before: auto; }
}
""").substitute(
    real=REAL,
    sim=SIM,
    low=SEVERITY_COLOUR["low"],
    medium=SEVERITY_COLOUR["medium"],
    high=SEVERITY_COLOUR["high"],
)

# Expand / collapse all, and open a window's details when a link targets it. Printing prints
# the windows as they are: alerts open, the others as a one-line index ("Expand all" first to
# print every window in full).
SCRIPT = """
(function () {
  function all(open) { document.querySelectorAll('details.window').forEach(function (d) {
    d.open = open; }); }
  function reveal() { var id = location.hash.slice(1); if (!id) return;
    var el = document.getElementById(id); if (el && el.tagName === 'DETAILS') el.open = true; }
  document.querySelectorAll('[data-open]').forEach(function (b) {
    b.addEventListener('click', function () { all(b.getAttribute('data-open') === '1'); }); });
  window.addEventListener('hashchange', reveal); reveal();
})();
"""


def _badge(severity: str, alert: bool) -> str:
    text = severity if alert else "normal"
    return f'<span class="badge {_e(severity if alert else "none")}">{_e(text)}</span>'


def _diverged_tags(w: _Window, n: int = 3) -> str:
    tags = [
        f'<span class="tag">{_e(_fact_name(f))} <span class="mono">z {_fmt(z, 1)}</span></span>'
        for f, z in w.top_diverged(n)
    ]
    more = len(w.diverged) - n
    if more > 0:
        tags.append(f'<span class="muted small">+{more} more</span>')
    return "".join(tags) or '<span class="muted small">none</span>'


def _header(meta: dict, wins: Sequence[_Window]) -> str:
    title = meta.get("title") or "Market surveillance replay"
    instruments = sorted({w.instrument for w in wins})
    days = sorted({w.day for w in wins if w.day})
    rollouts = meta.get("rollouts", wins[0].rec.get("rollouts") if wins else None)
    seed = meta.get("seed", wins[0].rec.get("seed") if wins else None)
    model = meta.get("model_version", wins[0].rec.get("model_version") if wins else None)
    files = [str(f) for f in _list(meta.get("files"))]
    cal = meta.get("calibration")
    if isinstance(cal, dict):
        far = _num(cal.get("far"))
        cal_html = (
            f"threshold <b>{_fmt(cal.get('threshold'), 3)}</b> for a target false-alarm rate of "
            f"<b>{_e(f'{far:.2%}' if far is not None else '–')}</b> per window, fitted on "
            f"{_e(cal.get('n_normal', '–'))} normal windows ({_e(cal.get('method', '–'))})"
        )
        if cal.get("note"):
            cal_html += f'<br><span class="muted small">note: {_e(cal["note"])}</span>'
    else:
        cal_html = (
            '<span class="muted">none: no calibrated threshold was given; alerts follow the '
            "thresholds in the window records, if any</span>"
        )
    malformed = meta.get("malformed_rows")
    rows = [
        ("Instruments", ", ".join(instruments) or "–"),
        ("Trading days", ", ".join(days) or "–"),
        ("Window length", meta.get("window", "–")),
        ("Rollouts per window", rollouts if rollouts is not None else "–"),
        ("Seed", seed if seed is not None else "–"),
        ("Model version", model or "–"),
    ]
    kv = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    kv += f"<dt>Calibration</dt><dd>{cal_html}</dd>"
    if files:
        kv += (
            "<dt>Input files</dt><dd>"
            + "<br>".join(f"<code>{_e(f)}</code>" for f in files)
            + "</dd>"
        )
    if malformed is not None:
        warn = ' style="color:var(--alert);font-weight:600"' if _num(malformed) else ""
        kv += f"<dt>Malformed input rows</dt><dd{warn}>{_e(malformed)} (skipped)</dd>"
    if meta.get("generated_by"):
        kv += f'<dt>Command</dt><dd><code class="cmd">{_e(meta["generated_by"])}</code></dd>'
    if meta.get("generated_at"):
        kv += f"<dt>Generated</dt><dd>{_e(meta['generated_at'])}</dd>"
    n = _e(rollouts if rollouts is not None else "N")
    method = f"""
<div class="method">
<p><b>Method.</b> At the start of every window the order book is copied and the market is
simulated forward {n} times with a generative model of normal order flow (the MarS approach).
When the real window has played out, each stylized fact of the real market (the spread, order
sizes, the buy/sell and cancel mix, returns, volatility, the pace of orders) is compared with
the same fact in the simulated futures by the <i>overlap coefficient</i> (OVL): the area shared
by the two distributions, 1 when they are identical and 0 when they do not overlap. A raw OVL
depends on how busy the window was, so it is judged against what the simulation does with
itself: each rollout is compared with the other rollouts, which gives the OVL to expect when
nothing is wrong (the <i>null</i>). A fact's <b>z</b> is how many null standard deviations the
real OVL lies below (negative) or above that expectation; the window's <b>score</b> combines the
facts' z (larger is more anomalous) and its <b>p-value</b> is the share of rollouts that scored
as high. The alert <b>threshold</b> is set on windows known to be normal so that only the
target share of normal windows would exceed it. An alert is a signal for review, not proof of
manipulation.</p>
<p><b>Reading the charts.</b></p>
<ul>
<li><span style="color:var(--real);font-weight:600">Vermillion</span> is always the real market,
<span style="color:var(--sim);font-weight:600">blue</span> the simulation.</li>
<li>Timeline: one bar per window, its height the score; windows above the dashed threshold are
alerts (shaded, bar coloured by severity). The two baselines beneath use no simulation: how far
the window is from the instrument's earlier windows, and a z-score rule on the mean spread.</li>
<li>Heatmap: one cell per fact and window; red cells are facts the simulation failed to
reproduce, outlined cells the facts counted as diverged. Hover a cell for the exact numbers;
click it to open the window.</li>
<li>Window details: the spread distribution real against simulated (as in MarS Fig. 8), the real
mid price against the spread of simulated paths (the fan), and every fact's overlap with its
null (diamond: real OVL; box: middle half of the null; line: null range).</li>
</ul>
</div>"""
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="subtitle">Investigator\'s report of an offline replay: the market compared '
        f"with its own simulated futures, window by window.</p>"
        f'<dl class="kv">{kv}</dl>{method}</header>'
    )


def _summary(wins: Sequence[_Window], by_inst: dict[str, list[_Window]]) -> str:
    rows = []
    for inst, ws in by_inst.items():
        scored = [w for w in ws if w.score is not None]
        alerts = [w for w in ws if w.alert]
        sev = {s: sum(w.severity == s for w in alerts) for s in ("high", "medium", "low")}
        top = max((w.score for w in scored if w.score is not None), default=None)
        rows.append(
            f"<tr><td><a href='#inst-{_e(_slug(inst))}'>{_e(inst)}</a></td>"
            f"<td class='num'>{len(ws)}</td><td class='num'>{len(scored)}</td>"
            f"<td class='num'><b>{len(alerts)}</b></td>"
            + "".join(f"<td class='num'>{sev[s]}</td>" for s in ("high", "medium", "low"))
            + f"<td class='num'>{_fmt(top, 2)}</td></tr>"
        )
    total_alerts = sum(w.alert for w in wins)
    counts = (
        "<table><thead><tr><th>Instrument</th><th class='num'>Windows</th>"
        "<th class='num'>Scored</th><th class='num'>Alerts</th><th class='num'>High</th>"
        "<th class='num'>Medium</th><th class='num'>Low</th><th class='num'>Max score</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    alerts = sorted((w for w in wins if w.alert), key=lambda w: (-(w.score or -math.inf), w.index))
    if alerts:
        arows = "".join(
            f"<tr><td><a href='#{w.anchor}'>{_e(w.instrument)}</a></td>"
            f"<td>{_e(w.day)} <b>{_e(w.label)}</b></td><td class='num'>{_fmt(w.score, 2)}</td>"
            f"<td class='num'>{_fmt(w.threshold, 2)}</td><td class='num'>{_fmt_p(w.p_value)}</td>"
            f"<td>{_badge(w.severity, True)}</td><td>{_diverged_tags(w)}</td></tr>"
            for w in alerts
        )
        table = (
            "<table><thead><tr><th>Instrument</th><th>Window</th><th class='num'>Score</th>"
            "<th class='num'>Threshold</th><th class='num'>p</th><th>Severity</th>"
            f"<th>Most diverged facts</th></tr></thead><tbody>{arows}</tbody></table>"
        )
    else:
        table = "<p>No window exceeded the alert threshold.</p>"
    lead = (
        f"<p>{len(wins)} windows replayed on {len(by_inst)} instrument"
        f"{'s' if len(by_inst) != 1 else ''}; <b>{total_alerts} alert"
        f"{'s' if total_alerts != 1 else ''}</b>.</p>"
    )
    return f"<section><h2>Summary</h2>{lead}{counts}<h3>Alerts, highest score first</h3>{table}</section>"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)[:40]


def _facts_table(w: _Window) -> str:
    facts = _fact_order(w.facts)
    if not facts:
        return (
            '<p class="muted">No fact overlaps were recorded for this window: the detector '
            "could not score it (for example, too few events).</p>"
        )
    values = [
        v
        for f in facts
        for v in [_num(w.facts[f].get("ovl")), *(_num(x) for x in _list(w.facts[f].get("null")))]
        if v is not None
    ]
    lo = math.floor(min(values, default=0.0) * 10) / 10
    lo = min(lo, 0.9)
    hi = 1.0
    rows = []
    for f in facts:
        ev = w.facts[f]
        diverged = f in w.diverged
        desc = FACT_INFO.get(f, ("", ""))[1]
        name = _e(_fact_name(f)) + (' <span class="tag">diverged</span>' if diverged else "")
        rows.append(
            f"<tr class='{'diverged' if diverged else ''}'><td>{name}"
            f" <span class='muted small'>· {_e(desc)}</span></td>"
            f"<td class='num'>{_fmt(ev.get('ovl'))}</td>"
            f"<td class='num'>{_fmt(ev.get('null_mean'))} ± {_fmt(ev.get('null_std'))}</td>"
            f"<td class='num'><b>{_fmt(ev.get('z'), 2)}</b></td>"
            f"<td class='num'>{_fmt_p(ev.get('p_value'))}</td>"
            f"<td>{null_strip(ev, lo, hi)}</td></tr>"
        )
    return (
        "<table class='facts'><thead><tr><th>Fact</th><th class='num'>OVL real vs sim</th>"
        "<th class='num'>Null: sim vs sim (mean ± sd)</th><th class='num'>z</th>"
        "<th class='num'>p</th>"
        f"<th>Real OVL in the null <span class='muted small'>(axis {lo:.1f} – {hi:.1f})</span></th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _window_section(w: _Window) -> str:
    rec = w.rec
    spread_ev = w.facts.get("spread_time_weighted", {})
    ovl = _num(spread_ev.get("ovl"))
    if ovl is None:  # fall back to the overlap of the pmfs drawn
        real = _dict(w.evidence.get("spread_real"))
        sim = _dict(w.evidence.get("spread_sim"))
        pr = dict(zip(_list(real.get("ticks")), _list(real.get("weight")), strict=False))
        ps = dict(zip(_list(sim.get("ticks")), _list(sim.get("weight")), strict=False))
        if pr and ps:
            ovl = sum(min(_num(pr[k]) or 0.0, _num(ps[k]) or 0.0) for k in set(pr) & set(ps))
    ovl_text = f"Distribution similarity (OVL): {_fmt(ovl)}"
    if _num(spread_ev.get("null_mean")) is not None:
        ovl_text += (
            f"  ·  sim vs sim {_fmt(spread_ev.get('null_mean'))} ± {_fmt(spread_ev.get('null_std'))}"
            f"  ·  z {_fmt(spread_ev.get('z'), 1)}"
        )
    start_clock = f" ({w.start:%H:%M})" if w.start else ""
    has_spread = any(_dict(w.evidence.get(k)).get("ticks") for k in ("spread_real", "spread_sim"))
    has_price = any(
        _num(v) is not None
        for k, field in (("price_real", "mid"), ("price_fan", "q50"))
        for v in _list(_dict(w.evidence.get(k)).get(field))
    )
    charts = (
        '<div class="charts">'
        '<div class="figure"><h4>Spread distribution, real vs simulated</h4>'
        "<p>Share of the window's time at each spread; simulated pooled over all rollouts.</p>"
        + spread_chart(w.evidence.get("spread_real"), w.evidence.get("spread_sim"), ovl_text)
        + "</div>"
        f'<div class="figure"><h4>Mid price against the rollout fan</h4><p>Minute 0 is the window '
        f"start{_e(start_clock)}; the fan spans the simulated futures forked from the same book.</p>"
        + price_chart(w.evidence.get("price_real"), w.evidence.get("price_fan"))
        + "</div></div>"
    )
    if not has_spread and not has_price:
        charts = (
            '<p class="nodata-line">No evidence recorded for this window: no spread '
            "distribution and no price path (no data).</p>"
        )
    b = w.baselines
    base_rows = [
        ("score / threshold", f"{_fmt(w.score, 2)} / {_fmt(w.threshold, 2)}"),
        ("p (rollouts)", _fmt_p(w.p_value)),
        ("p (normal approx.)", _fmt_p(rec.get("p_value_normal"))),
        ("baseline: historical Diff", _fmt(b.get("historical_diff"))),
        ("baseline: spread z-score", _fmt(b.get("spread_zscore"), 2)),
        ("real events", _e(rec.get("n_events", "–"))),
        ("rollouts / seed", f"{_e(rec.get('rollouts', '–'))} / {_e(rec.get('seed', '–'))}"),
        ("model", _e(rec.get("model_version", "–"))),
    ]
    side = (
        '<div class="stats">'
        + "".join(f"<div><span>{_e(k)}</span><b>{v}</b></div>" for k, v in base_rows)
        + "</div>"
    )
    diverged = (
        "<p><b>Diverged facts</b> (most surprising first): "
        + (", ".join(_e(_fact_name(f)) for f in w.diverged) if w.diverged else "none")
        + "</p>"
    )
    when = f"{_e(w.instrument)} · {_e(w.day)} {_e(w.label)}"
    ns_span = _e(f"{rec.get('window_start_ns', '–')} – {rec.get('window_end_ns', '–')} ns")
    summary = (
        f"<summary><span class='when' title='{ns_span}'>{when}</span>{_badge(w.severity, w.alert)}"
        f"<span class='score mono'>score {_fmt(w.score, 2)}</span>"
        f"<span class='mono small'>p {_fmt_p(w.p_value)}</span>"
        f"<span>{_diverged_tags(w) if w.diverged else ''}</span></summary>"
    )
    cls = "window alert" if w.alert else "window"
    opened = " open" if w.alert else ""
    return (
        f'<details class="{cls}" id="{w.anchor}"{opened}>{summary}<div class="body">'
        f"{side}{diverged}{charts}<h3>Facts: real versus simulated overlap</h3>{_facts_table(w)}"
        "</div></details>"
    )


# ---------------------------------------------------------------------------- entry points
def render_report(records: list[dict], meta: dict) -> str:
    """The report as one self-contained HTML document (see the module docstring)."""
    meta = _dict(meta)
    wins = [_Window(i, r) for i, r in enumerate(records) if isinstance(r, dict)]
    cal_threshold = _num(_dict(meta.get("calibration")).get("threshold"))
    for w in wins:
        if w.threshold is None:
            w.threshold = cal_threshold
    by_inst: dict[str, list[_Window]] = {}
    for w in wins:
        by_inst.setdefault(w.instrument, []).append(w)
    for ws in by_inst.values():
        ws.sort(key=lambda w: (w.t0, w.index))
    body = [_header(meta, wins)]
    if not wins:
        body.append("<section><h2>Summary</h2><p>The replay produced no windows.</p></section>")
    else:
        body.append(_summary(wins, by_inst))
        day = ["<section><h2>The day, window by window</h2>"]
        for inst, ws in by_inst.items():
            day.append(
                f"<h3 id='inst-{_e(_slug(inst))}'>{_e(inst)}</h3>"
                f"<div class='figure'><h4>Score per window, with baselines</h4>{timeline_chart(ws)}</div>"
                f"<div class='figure' style='margin-top:10px'><h4>Fact overlaps over the day (z)</h4>"
                f"{heatmap_chart(ws)}</div>"
            )
        body.append("".join(day) + "</section>")
        alerts = sorted(
            (w for w in wins if w.alert), key=lambda w: (-(w.score or -math.inf), w.index)
        )
        normal = [w for ws in by_inst.values() for w in ws if not w.alert]
        body.append(
            "<section><h2>Windows</h2><p>Alert windows first (open), then the other windows by "
            "instrument and time (closed; click to open). Printing prints the windows as they "
            "are shown.</p>"
            '<div class="toolbar"><button type="button" data-open="1">Expand all</button> '
            '<button type="button" data-open="0">Collapse all</button></div>'
            + "".join(_window_section(w) for w in alerts + normal)
            + "</section>"
        )
    footer = (
        "<footer>Generated by the surveillance replay"
        + (f" · model {_e(meta.get('model_version'))}" if meta.get("model_version") else "")
        + ". A self-contained file: nothing is fetched when it is opened.</footer>"
    )
    title = _e(meta.get("title") or "Market surveillance replay")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(body)}{footer}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(path: str | Path, records: list[dict], meta: dict) -> Path:
    """Render the report and write it (UTF-8) to ``path``; returns the path."""
    path = Path(path)
    path.write_text(render_report(records, meta), encoding="utf-8")
    return path
