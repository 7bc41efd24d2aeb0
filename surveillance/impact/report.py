"""The impact report: one self-contained HTML page (inline SVG, the investigator report's
stylesheet and chart primitives) read from ``ImpactReport.as_dict()``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from surveillance.report.assets import CSS
from surveillance.report.svg import (
    FAN_INNER,
    REAL,
    SIM,
    SIM_DARK,
    _band,
    _e,
    _legend,
    _path,
    _svg,
    _text,
    _ticks,
    _y_axis,
)

PALETTE = (SIM, REAL, "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


def _xy(ts: Sequence[float], ys: Sequence[float] | None) -> list[tuple[float, float | None]]:
    if ys is None:
        return []
    return [
        (t, y if y is not None and math.isfinite(y) else None) for t, y in zip(ts, ys, strict=False)
    ]


def path_chart(
    runs: Sequence[dict],
    unit: str = "bps",
    band: bool = True,
    width: int = 560,
    height: int = 300,
    title: str = "",
) -> str:
    """Mean impact paths over time (minutes since arrival), the first run's 10-90% band, and a
    line at each run's end of execution."""
    key = "bps" if unit == "bps" else "sigma"
    series = []
    for r in runs:
        p = r["path"]
        series.append(
            (
                r,
                _xy(p["t_s"], p[f"mean_{key}"]),
                _xy(p["t_s"], p[f"q10_{key}"]),
                _xy(p["t_s"], p[f"q90_{key}"]),
            )
        )
    ys = [y for _, m, lo, hi in series for pts in ((m, lo, hi) if band else (m,)) for _, y in pts]
    ys = [y for y in ys if y is not None] + [0.0]
    xs = [x for _, m, _, _ in series for x, _ in m]
    if not xs:
        return ""
    ml, mr, mt, mb = 64, 14, 34, 44
    pw, ph = width - ml - mr, height - mt - mb
    ylo, yhi = min(ys), max(ys)
    pad = max((yhi - ylo) * 0.06, 1e-6)
    ylo, yhi = ylo - pad, yhi + pad
    xlo, xhi = 0.0, max(xs)

    def xmap(s: float) -> float:
        return ml + pw * (s - xlo) / max(xhi - xlo, 1e-9)

    def ymap(v: float) -> float:
        return mt + ph * (1 - (v - ylo) / (yhi - ylo))

    yt = [t for t in _ticks(ylo, yhi, 5) if ylo <= t <= yhi]
    parts = [_y_axis(yt, ymap, ml, ml + pw, lambda v: f"{v:.3g}")]
    for t in _ticks(0, xhi / 60, 8):
        if t * 60 <= xhi:
            parts.append(_text(xmap(t * 60), mt + ph + 16, f"{t:g}", cls="tick"))
    parts.append(
        f'<line x1="{ml}" x2="{ml + pw}" y1="{ymap(0):.1f}" y2="{ymap(0):.1f}" class="axis"/>'
    )
    if band and series and series[0][2]:
        parts.append(
            f'<path d="{_band(series[0][2], series[0][3], xmap, ymap)}" fill="{FAN_INNER}" '
            'fill-opacity="0.6"/>'
        )
    legend = []
    for k, (r, mean, _, _) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        x_end = xmap(r["exec_end_s"])
        parts.append(
            f'<line x1="{x_end:.1f}" x2="{x_end:.1f}" y1="{mt}" y2="{mt + ph}" stroke="{colour}" '
            'stroke-dasharray="3 3" stroke-width="1"/>'
        )
        parts.append(
            f'<path d="{_path(mean, xmap, ymap)}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        pct = f" ({r['pct']:g}%)" if r.get("pct") is not None else ""
        legend.append((f"{r['strategy']} {r['qty']}{pct}", colour))
    parts.append(_legend(ml + 8, mt + 4, legend, kind="line"))
    parts.append(_text(ml + pw / 2, height - 8, "minutes since arrival", cls="axis-label"))
    ylabel = "impact (bps)" if key == "bps" else "impact / sigma_T"
    parts.append(
        _text(
            14,
            mt + ph / 2,
            ylabel,
            cls="axis-label",
            extra=f' transform="rotate(-90 14 {mt + ph / 2:.1f})"',
        )
    )
    if title:
        parts.append(_text(ml, 18, title, anchor="start", cls="axis-label"))
    return _svg(width, height, "".join(parts), title or "impact paths")


def law_chart(law: dict, width: int = 420, height: int = 300) -> str:
    """The size law on log-log axes: each size's mean end impact / sigma_T with its standard
    error, and the fitted line."""
    x = list(law["x"])
    pts = [(a, y, e) for a, y, e in zip(x, law["y"], law["y_se"], strict=True) if a > 0]
    pos = [(a, y, e) for a, y, e in pts if y > 0]
    if len(pos) < 1:
        return ""
    lx = [math.log10(a) for a, _, _ in pts]
    fit_y = [law["Y"] * a ** law["delta"] for a, _, _ in pts]
    all_y = [y for _, y, _ in pos] + [y + e for _, y, e in pos] + [f for f in fit_y if f > 0]
    all_y += [max(y - e, min(all_y) / 3) for _, y, e in pos]
    ly = [math.log10(v) for v in all_y if v > 0]
    ml, mr, mt, mb = 60, 14, 30, 44
    pw, ph = width - ml - mr, height - mt - mb
    xlo, xhi = min(lx) - 0.15, max(lx) + 0.15
    ylo, yhi = min(ly) - 0.15, max(ly) + 0.15

    def xmap(v: float) -> float:
        return ml + pw * (v - xlo) / (xhi - xlo)

    def ymap(v: float) -> float:
        return mt + ph * (1 - (v - ylo) / (yhi - ylo))

    parts = []
    for e in range(math.floor(ylo), math.ceil(yhi) + 1):
        for m in (1, 2, 5):
            v = math.log10(m) + e
            if ylo <= v <= yhi:
                parts.append(
                    f'<line x1="{ml}" x2="{ml + pw}" y1="{ymap(v):.1f}" y2="{ymap(v):.1f}" '
                    'class="grid"/>'
                )
                parts.append(_text(ml - 6, ymap(v) + 4, f"{10**v:.2g}", anchor="end", cls="tick"))
    for a, _, _ in pts:
        parts.append(_text(xmap(math.log10(a)), mt + ph + 16, f"{a:.2%}", cls="tick"))
    line = [
        (math.log10(a), math.log10(f)) for (a, _, _), f in zip(pts, fit_y, strict=True) if f > 0
    ]
    parts.append(
        f'<path d="{_path(line, xmap, ymap)}" fill="none" stroke="{SIM_DARK}" '
        'stroke-width="1.5" stroke-dasharray="5 3"/>'
    )
    for a, y, e in pos:
        cx, cy = xmap(math.log10(a)), ymap(math.log10(y))
        lo = math.log10(max(y - e, 10**ylo))
        hi = math.log10(y + e)
        parts.append(
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{ymap(lo):.1f}" y2="{ymap(hi):.1f}" '
            f'stroke="{SIM}"/><circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{SIM}"/>'
        )
    parts.append(_text(ml + pw / 2, height - 8, "Q / V_T", cls="axis-label"))
    parts.append(
        _text(
            14,
            mt + ph / 2,
            "I(T) / sigma_T",
            cls="axis-label",
            extra=f' transform="rotate(-90 14 {mt + ph / 2:.1f})"',
        )
    )
    ci = law.get("delta_ci95")
    label = f"delta = {law['delta']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    parts.append(_text(ml, 18, label, anchor="start", cls="axis-label"))
    return _svg(width, height, "".join(parts), "impact against size, log-log")


def _table(runs: Sequence[dict]) -> str:
    head = (
        "<tr><th>strategy</th><th class=num>shares</th><th class=num>% of V_T</th>"
        "<th class=num>peak (bps)</th><th class=num>end (bps)</th><th class=num>end / sigma_T"
        "</th><th class=num>after (bps)</th><th class=num>fill rate</th><th class=num>"
        "shortfall (bps)</th><th class=num>decay exponent</th></tr>"
    )
    rows = []
    for r in runs:
        d = r.get("decay") or {}
        ci = d.get("exponent_ci95")
        decay = (
            "–"
            if "exponent" not in d
            else f"{d['exponent']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        )
        se = r.get("end_bps_se")
        pct = "–" if r["pct"] is None else f"{r['pct']:g}"
        rows.append(
            f"<tr><td>{_e(r['strategy'])}</td><td class=num>{r['qty']}</td>"
            f"<td class=num>{pct}</td>"
            f"<td class=num>{r['peak_bps']:.2f}</td>"
            f"<td class=num>{r['end_bps']:.2f}{'' if se is None else f' ± {se:.2f}'}</td>"
            f"<td class=num>{_f(r['end_sigma'])}</td><td class=num>{r['final_bps']:.2f}</td>"
            f"<td class=num>{r['fill_rate']:.3f}</td><td class=num>{_f(r['shortfall_bps'], 2)}"
            f"</td><td class=num>{_e(decay)}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def render(out: dict) -> str:
    """The report page of one ``ImpactReport.as_dict()``."""
    vol, v = out["volatility"], out["volume"]
    body = [
        f"<h1>Market impact: {_e(out['instrument'])} {_e(out['side'])} at {_e(out['start'])}</h1>",
        f"<p class=subtitle>{out['rollouts']} rollout pairs, seed {out['seed']}, generator "
        f"<code>{_e(out['generator'])}</code>; execution {out['duration_s']:g} s, watched "
        f"{out['after_s']:g} s after; held-out hours: {out['held_out']}</p>",
        "<div class=method><p>Each rollout is forked twice from the real book with the same "
        "seed, with and without the metaorder; the impact is the difference of the two mids, "
        "signed by the side, against the arrival mid. sigma_T is the baseline rollouts' "
        f"volatility over the execution ({vol['sigma_T_bps']:.2f} bps; per minute "
        f"{vol['per_minute_bps']:.2f} bps). V_T = {v['per_duration']:.0f} shares: the mean "
        f"visible volume per {v['duration_s']:g} s of the training hours "
        f"({_e(' to '.join(v['training_hours']))}).</p></div>",
    ]
    runs = out["runs"]
    body.append("<h2>Impact paths</h2>")
    body.append(path_chart(runs, "bps", band=len(runs) == 1, title="mean impact (bps)"))
    body.append(path_chart(runs, "sigma", band=len(runs) == 1, title="mean impact / sigma_T"))
    body.append(_table(runs))
    law = out.get("size_law")
    if law:
        ci, yci, ydci = law["delta_ci95"], law["Y_ci95"], law["Y_daily_ci95"]
        body.append("<h2>Size law</h2>")
        body.append(law_chart(law))
        body.append(
            f"<p>I(T)/sigma_T = Y (Q/V_T)^delta: delta = <b>{law['delta']:.3f}</b> "
            f"(95% {_e(ci)}), Y = <b>{law['Y']:.3f}</b> (95% {_e(yci)}); on the daily "
            f"convention Y = {law['Y_daily']:.3f} (95% {_e(ydci)}). The literature finds delta "
            f"near 0.5 (0.6 in Almgren et al. 2005) and Y of order one "
            f"({law['Y_literature'][0]}-{law['Y_literature'][1]}). Goals: "
            f"{_e(law['goals'])}.</p>"
        )
    agg = out.get("aggressiveness")
    if agg:
        body.append("<h2>Aggressiveness</h2>")
        body.append(path_chart(agg["runs"], "bps", band=False, title="mean impact (bps)"))
        body.append(_table(agg["runs"]))
        body.append(f"<p>Peak impact rises along the ladder: {agg['peak_rises']}.</p>")
    for note in out.get("notes", []):
        body.append(f"<p class=muted>note: {_e(note)}</p>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Market impact {_e(out['instrument'])}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>"
    )


def write_report(path: str | Path, out: dict) -> Path:
    path = Path(path)
    path.write_text(render(out), encoding="utf-8")
    return path
