"""The report's five charts, drawn as inline SVG: the spread distribution, the mid-price fan,
the day timeline, the fact heatmap and the null strip of one fact."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from surveillance.report.records import (
    DIVERGED_Z,
    _dict,
    _fact_name,
    _fact_order,
    _list,
    _num,
    _Window,
)
from surveillance.report.svg import (
    FAN_INNER,
    FAN_OUTER,
    HEATMAP_Z_LIMIT,
    MAX_PATH_POINTS,
    NORMAL_BAR,
    REAL,
    SEVERITY_COLOUR,
    SIM,
    SIM_DARK,
    _band,
    _c,
    _decimals,
    _e,
    _fmt,
    _fmt_p,
    _ink_on,
    _legend,
    _no_data,
    _path,
    _svg,
    _text,
    _ticks,
    _y_axis,
    _z_colour,
    downsample,
)


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
