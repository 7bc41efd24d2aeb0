"""The forecast report: one self-contained HTML page drawn from ``ForecastReport.as_dict()``
with the investigator report's SVG primitives and stylesheet (``surveillance.report``).

Charts: macro-F1 per horizon with its 95% interval for every method; a fan of the engine's
predictive distribution of the mid against the real mid for a few start times; the coverage
of the 50% and 90% intervals per horizon against their nominal levels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from surveillance.report.assets import CSS
from surveillance.report.svg import (
    FAN_INNER,
    FAN_OUTER,
    REAL,
    SIM,
    SIM_DARK,
    _band,
    _c,
    _e,
    _fmt,
    _legend,
    _path,
    _svg,
    _text,
    _ticks,
    _y_axis,
)

# One colour per method (Okabe-Ito), the engine in the simulation blue.
METHOD_COLOUR = {
    "engine": SIM,
    "engine_mean": "#56b4e9",
    "deeplob": "#d55e00",
    "logistic": "#009e73",
    "no_change": "#999999",
    "most_frequent": "#cc79a7",
}


def _frame(
    width: int, height: int, left: int = 52, right: int = 150, top: int = 14, bottom: int = 34
):
    return left, width - right, top, height - bottom


def _domain(lo: float, hi: float) -> tuple[list[float], float, float]:
    """Axis ticks for [lo, hi] and a domain that holds both the data and every tick (the
    ticks alone may fall inside the data's range)."""
    ticks = _ticks(lo, hi)
    return ticks, min(lo, ticks[0]), max(hi, ticks[-1])


def f1_chart(per_horizon: Sequence[dict], width: int = 720, height: int = 300) -> str:
    """Macro-F1 per horizon, one dot and 95% interval bar per method, side by side."""
    methods = list(per_horizon[0]["methods"])
    x0, x1, y0, y1 = _frame(width, height)
    lows = [r["methods"][m]["macro_f1"]["low"] for r in per_horizon for m in methods]
    highs = [r["methods"][m]["macro_f1"]["high"] for r in per_horizon for m in methods]
    lo = min([v for v in lows if v is not None] + [0.2])
    hi = max([v for v in highs if v is not None] + [0.6])
    ticks, lo, hi = _domain(max(0.0, lo - 0.02), min(1.0, hi + 0.02))

    def ymap(v: float) -> float:
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    slot = (x1 - x0) / len(per_horizon)
    step = slot / (len(methods) + 1)
    parts = [_y_axis(ticks, ymap, x0, x1, lambda t: f"{t:.2f}")]
    for k, row in enumerate(per_horizon):
        cx = x0 + k * slot
        parts.append(_text(cx + slot / 2, y1 + 18, f"{row['horizon_s'] // 60} min", cls="tick"))
        for j, m in enumerate(methods):
            f = row["methods"][m]["macro_f1"]
            if f["value"] is None:
                continue
            x = cx + (j + 1) * step
            colour = METHOD_COLOUR.get(m, SIM_DARK)
            if f["low"] is not None and f["high"] is not None:
                parts.append(
                    f'<line x1="{_c(x)}" x2="{_c(x)}" y1="{_c(ymap(f["low"]))}" '
                    f'y2="{_c(ymap(f["high"]))}" stroke="{colour}" stroke-width="2"/>'
                )
            parts.append(
                f'<circle cx="{_c(x)}" cy="{_c(ymap(f["value"]))}" r="3.5" fill="{colour}">'
                f"<title>{_e(m)} {row['horizon_s']}s: {f['value']:.3f}</title></circle>"
            )
    parts.append(_legend(x1 + 14, y0 + 4, [(m, METHOD_COLOUR.get(m, SIM_DARK)) for m in methods]))
    return _svg(width, height, "".join(parts), "macro-F1 per horizon and method")


def fan_chart(fan: dict, width: int = 360, height: int = 230) -> str:
    """The rollouts' 5-95% and 25-75% bands and median of the mid (bps of the start mid) at
    each horizon, with the real mid there."""
    hs = [0, *fan["horizons_s"]]
    q = {k: [0.0, *v] for k, v in fan["quantiles"].items()}
    real = [0.0, *fan["real_bps"]]
    x0, x1, y0, y1 = _frame(width, height, right=16, top=24)
    values = [v for vs in q.values() for v in vs] + real
    ticks, lo, hi = _domain(min(values) - 0.5, max(values) + 0.5)

    def xmap(s: float) -> float:
        return x0 + s / hs[-1] * (x1 - x0)

    def ymap(v: float) -> float:
        return y1 - (v - lo) / (hi - lo) * (y1 - y0)

    def pts(vs: Sequence[float]) -> list[tuple[float, float]]:
        return list(zip(hs, vs, strict=True))

    parts = [_y_axis(ticks, ymap, x0, x1, lambda t: _fmt(t, 1))]
    parts.append(
        f'<path d="{_band(pts(q["0.05"]), pts(q["0.95"]), xmap, ymap)}" fill="{FAN_OUTER}"/>'
    )
    parts.append(
        f'<path d="{_band(pts(q["0.25"]), pts(q["0.75"]), xmap, ymap)}" fill="{FAN_INNER}"/>'
    )
    parts.append(
        f'<path d="{_path(pts(q["0.5"]), xmap, ymap)}" fill="none" stroke="{SIM}" '
        'stroke-width="2"/>'
    )
    parts.append(
        f'<path d="{_path(pts(real), xmap, ymap)}" fill="none" stroke="{REAL}" stroke-width="2.5"/>'
    )
    for s in hs:
        parts.append(_text(xmap(s), y1 + 16, f"{s // 60}m", cls="tick"))
    parts.append(
        _text(x0, 14, f"{fan['instrument']} from {fan['start'][:5]} (bps)", anchor="start")
    )
    return _svg(width, height, "".join(parts), f"fan {fan['instrument']} {fan['start']}")


def coverage_chart(per_horizon: Sequence[dict], width: int = 520, height: int = 240) -> str:
    """Coverage of the 50% and 90% intervals per horizon (with 95% intervals), nominal dashed."""
    x0, x1, y0, y1 = _frame(width, height, right=110)
    ticks = _ticks(0.0, 1.0)

    def ymap(v: float) -> float:
        return y1 - v * (y1 - y0)

    slot = (x1 - x0) / len(per_horizon)
    parts = [_y_axis(ticks, ymap, x0, x1, lambda t: f"{t:.1f}")]
    colours = {"50": FAN_INNER, "90": SIM_DARK}
    for level, colour in colours.items():
        y = ymap(int(level) / 100)
        parts.append(
            f'<line x1="{_c(x0)}" x2="{_c(x1)}" y1="{_c(y)}" y2="{_c(y)}" stroke="{colour}" '
            'stroke-dasharray="5,4"/>'
        )
    for k, row in enumerate(per_horizon):
        cx = x0 + (k + 0.5) * slot
        parts.append(_text(cx, y1 + 18, f"{row['horizon_s'] // 60} min", cls="tick"))
        for j, (level, colour) in enumerate(colours.items()):
            c = row["coverage"][level]
            if c["value"] is None:
                continue
            x = cx + (j - 0.5) * 14
            if c["low"] is not None:
                parts.append(
                    f'<line x1="{_c(x)}" x2="{_c(x)}" y1="{_c(ymap(c["low"]))}" '
                    f'y2="{_c(ymap(c["high"]))}" stroke="{colour}" stroke-width="2"/>'
                )
            parts.append(
                f'<circle cx="{_c(x)}" cy="{_c(ymap(c["value"]))}" r="4" fill="{colour}"/>'
            )
    parts.append(
        _legend(x1 + 14, y0 + 4, [("50% interval", FAN_INNER), ("90% interval", SIM_DARK)])
    )
    return _svg(width, height, "".join(parts), "coverage per horizon")


def _interval(d: dict[str, Any] | None, digits: int = 3) -> str:
    if not d or d.get("value") is None:
        return "–"
    return f"{_fmt(d['value'], digits)} <span class='muted'>[{_fmt(d['low'], 2)}, {_fmt(d['high'], 2)}]</span>"


def _table(metrics: dict[str, Any]) -> str:
    per_h = metrics["per_horizon"]
    methods = list(per_h[0]["methods"])
    head = "".join(f"<th class='num'>{_e(m)}</th>" for m in methods)
    rows = []
    for key, label in (("macro_f1", "macro-F1"), ("accuracy", "accuracy")):
        for row in per_h:
            cells = "".join(
                f"<td class='num'>{_interval(row['methods'][m][key])}</td>" for m in methods
            )
            rows.append(f"<tr><td>{label} {row['horizon_s'] // 60} min</td>{cells}</tr>")
    avg = metrics["average"]["macro_f1"]
    cells = "".join(f"<td class='num'>{_interval(avg[m])}</td>" for m in methods)
    rows.append(f"<tr><td><b>macro-F1, mean 1-5 min</b></td>{cells}</tr>")
    dist = [
        "<tr><th>horizon</th><th class='num'>CRPS engine (bps)</th>"
        "<th class='num'>CRPS no change</th><th class='num'>coverage 50%</th>"
        "<th class='num'>coverage 90%</th><th class='num'>engine − DeepLOB F1</th></tr>"
    ]
    for row in per_h:
        c = row["crps_bps"]
        dl = row["engine_minus"].get("deeplob")
        dist.append(
            f"<tr><td>{row['horizon_s'] // 60} min</td>"
            f"<td class='num'>{_interval(c['engine'])}</td>"
            f"<td class='num'>{_interval(c['no_change'])}</td>"
            f"<td class='num'>{_interval(row['coverage']['50'])}</td>"
            f"<td class='num'>{_interval(row['coverage']['90'])}</td>"
            f"<td class='num'>{_interval(dl)}</td></tr>"
        )
    return (
        f"<table><tr><th>score</th>{head}</tr>{''.join(rows)}</table><table>{''.join(dist)}</table>"
    )


def render_forecast_report(out: dict[str, Any]) -> str:
    pooled = out["pooled"]
    s = out["settings"]
    body = [
        "<h1>Forecasting on the engine</h1>",
        f"<p class='subtitle'>{_e(', '.join(out['instruments']))} · generator "
        f"{_e(out['generator'])} · {pooled['starts']} start times, {s['every_s']} s apart · "
        f"{s['rollouts']} rollouts · block bootstrap of {s['bootstrap']['block_starts']} "
        f"consecutive starts, {s['bootstrap']['draws']} draws</p>",
        "<div class='method'><p>Target (MarS Sec. 4.1): l = (mean mid after each order within "
        "the horizon − m0)/m0, down/flat/up at the terciles of l over the training grid "
        f"({_e(s['training_grid'])}), frozen before the evaluated hours are read. The engine "
        "forecasts the majority class of its rollouts; its predictive distribution of the mid "
        "at each horizon is the rollouts' mids (CRPS in basis points of the start mid).</p></div>",
        "<h2>Pooled</h2>",
        f"<div class='figure'><h4>macro-F1 per horizon (95% intervals)</h4>"
        f"{f1_chart(pooled['per_horizon'])}</div>",
        _table(pooled),
        f"<div class='figure'><h4>Coverage of the engine's intervals</h4>"
        f"{coverage_chart(pooled['per_horizon'])}</div>",
        "<h3>Goals</h3><ul>"
        + "".join(
            f"<li>{_e(k)}: <b>{'met' if v else 'not met'}</b></li>" for k, v in out["goals"].items()
        )
        + "</ul>",
        "<h2>Predictive distributions at a few start times</h2>"
        "<div style='display:flex;flex-wrap:wrap;gap:10px'>"
        + "".join(fan_chart(f) for f in out["fans"])
        + "</div><p class='muted'>Blue bands: rollouts' 5-95% and 25-75%; blue line: their "
        "median; orange: the real mid.</p>",
    ]
    for name, inst in out["instruments"].items():
        body.append(
            f"<h2>{_e(name)}</h2><p>{inst['starts']} starts {inst['first_start'][:5]} to "
            f"{inst['last_start'][:5]}; {inst['orders_per_rollout']} orders per rollout over the "
            f"longest horizon against {inst['real_orders']} real; forks {inst['fork_seconds']} s."
            "</p>"
            f"<div class='figure'>{f1_chart(inst['metrics']['per_horizon'])}</div>"
            + _table(inst["metrics"])
        )
    for note in out.get("notes", []):
        body.append(f"<p class='muted'>note: {_e(note)}</p>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>Forecasting on the engine</title>"
        f"<style>{CSS} .muted{{color:var(--muted);font-size:12px}}</style></head>"
        f"<body><main>{''.join(body)}<footer>Generated by surveillance forecast. "
        "A self-contained file: nothing is fetched when it is opened.</footer></main></body></html>\n"
    )


def write_forecast_report(path: str | Path, out: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(render_forecast_report(out), encoding="utf-8")
    return path
