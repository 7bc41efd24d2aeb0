"""SVG and text primitives of the report: colours, number formatting, axes ticks, paths,
bands, legends and path downsampling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from surveillance.report.records import _num

MAX_PATH_POINTS = 300
HEATMAP_Z_LIMIT = 6.0

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
