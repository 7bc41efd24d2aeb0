"""The execution study's HTML report: each policy's shortfall against the best fixed TWAP with
its paired interval, fill rates, and how the learner trained (one self-contained file)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from surveillance.report.assets import CSS
from surveillance.report.svg import REAL, SIM, _c, _e, _svg, _text, _ticks

ROW_H = 18


def interval_chart(rows: list[dict[str, Any]], width: int = 760) -> str:
    """One row per policy: the paired difference to the best fixed TWAP (bps, lower is
    better) with its 95% interval, sorted by the difference."""
    rows = sorted(rows, key=lambda r: r["vs_best_twap_bps"])
    left, right, top = 130, 20, 24
    height = top + ROW_H * len(rows) + 34
    lo = min(min(r["vs_best_twap_low"] for r in rows), 0.0)
    hi = max(max(r["vs_best_twap_high"] for r in rows), 0.0)
    ticks = _ticks(lo, hi, 6)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo) / ((hi - lo) or 1.0)

    parts = [_text(left, 14, "shortfall minus the best fixed TWAP's, bps (95% paired interval)",
                   anchor="start", cls="panel-title")]  # fmt: skip
    bottom = top + ROW_H * len(rows)
    for t in ticks:
        parts.append(
            f'<line x1="{_c(x(t))}" x2="{_c(x(t))}" y1="{top}" y2="{bottom}" class="grid"/>'
        )
        parts.append(_text(x(t), bottom + 14, f"{t:g}", cls="tick"))
    parts.append(f'<line x1="{_c(x(0))}" x2="{_c(x(0))}" y1="{top}" y2="{bottom}" class="axis"/>')
    for i, r in enumerate(rows):
        y = top + ROW_H * i + ROW_H / 2
        colour = REAL if r["policy"] == "learner" else SIM
        parts.append(_text(left - 8, y + 4, r["policy"], anchor="end", cls="row-label"))
        parts.append(
            f'<line x1="{_c(x(r["vs_best_twap_low"]))}" x2="{_c(x(r["vs_best_twap_high"]))}" '
            f'y1="{_c(y)}" y2="{_c(y)}" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(
            f'<circle cx="{_c(x(r["vs_best_twap_bps"]))}" cy="{_c(y)}" r="4" fill="{colour}"/>'
        )
    parts.append(_text((left + width) / 2, height - 4, "bps of the arrival mid", cls="axis-label"))
    return _svg(width, height, "".join(parts), "paired shortfall differences")


def bars_chart(
    values: list[tuple[str, float]],
    title: str,
    fmt: str,
    width: int = 760,
    goal: float | None = None,
) -> str:
    """Horizontal bars, one per name (``goal``: a dashed line at that value)."""
    left, right, top = 130, 60, 24
    height = top + ROW_H * len(values) + 20
    hi = max([v for _, v in values] + [goal or 0.0, 1e-9])
    lo = min([v for _, v in values] + [0.0])

    def x(v: float) -> float:
        return left + (width - left - right) * (v - lo) / ((hi - lo) or 1.0)

    parts = [_text(left, 14, title, anchor="start", cls="panel-title")]
    for i, (name, v) in enumerate(values):
        y = top + ROW_H * i
        colour = REAL if name == "learner" else SIM
        x0, x1 = sorted((x(0), x(v)))
        parts.append(_text(left - 8, y + 13, name, anchor="end", cls="row-label"))
        parts.append(
            f'<rect x="{_c(x0)}" y="{_c(y + 3)}" width="{_c(max(x1 - x0, 1))}" height="12" '
            f'fill="{colour}"/>'
        )
        parts.append(_text(max(x1, x0) + 4, y + 13, format(v, fmt), anchor="start", cls="tick"))
    if goal is not None:
        g = x(goal)
        parts.append(
            f'<line x1="{_c(g)}" x2="{_c(g)}" y1="{top}" y2="{top + ROW_H * len(values)}" '
            'class="threshold"/>'
        )
    return _svg(width, height, "".join(parts), title)


def render(result: dict[str, Any], trained: dict[str, Any] | None) -> str:
    rows = result["policies"]
    cfg = result["config"]
    side = "buy" if cfg["side"] > 0 else "sell"
    body = [
        f"<h1>Execution on forks of {_e(result['instrument'])}</h1>",
        f'<p class="subtitle">{side} {cfg["qty"]} shares within '
        f"{cfg['horizon_ns'] / 6e10:g} min, decisions every {cfg['interval_ns'] / 1e9:g} s; "
        f"{result['episodes']} held-out episodes ({result['hours'][0]}-{result['hours'][1]}), "
        f"the same seeds for every policy; generator {_e(result.get('generator'))}</p>",
        '<div class="method"><p>Shortfall: basis points of the arrival mid per share of the '
        "parent order, what is unfilled at the horizon charged at the opposite touch plus "
        f"{cfg['penalty_bps']:g} bps. Intervals: 95% t intervals of the per-episode difference "
        f"to the best fixed TWAP setting on these episodes ({_e(result['best_twap'])}).</p></div>",
    ]
    if "goal" in result:
        g = result["goal"]
        body.append(
            f"<p><b>Goal {'met' if g['met'] else 'not met'}</b>: learner vs best fixed TWAP "
            f"{_e(g['learner_vs_best_twap'])}, fill rate {g['learner_fill_rate']:.3f}.</p>"
        )
    body.append('<div class="figure">' + interval_chart(rows) + "</div>")
    fills = [(r["policy"], r["fill_rate"]) for r in rows]
    body.append(
        '<div class="figure">'
        + bars_chart(fills, "fill rate (dashed: 0.98)", ".3f", goal=0.98)
        + "</div>"
    )
    body.append("<h2>Policies</h2><table><tr><th>policy</th>")
    heads = ("shortfall bps", "filled-share bps", "fill rate", "complete", "vs best", "95%")
    body.append("".join(f'<th class="num">{h}</th>' for h in heads) + "<th></th></tr>")
    for r in rows:
        body.append(
            f"<tr><td>{_e(r['policy'])}</td>"
            f'<td class="num">{r["shortfall_bps"]:.3f}</td>'
            f'<td class="num">{r["filled_shortfall_bps"]:.3f}</td>'
            f'<td class="num">{r["fill_rate"]:.3f}</td><td class="num">{r["complete"]:.2f}</td>'
            f'<td class="num">{r["vs_best_twap_bps"]:+.3f}</td>'
            f'<td class="num">[{r["vs_best_twap_low"]:+.3f}, {r["vs_best_twap_high"]:+.3f}]</td>'
            f"<td>{_e(r['vs_best_twap'])}</td></tr>"
        )
    body.append("</table>")
    if "learner_actions" in result:
        acts = sorted(result["learner_actions"].items(), key=lambda kv: -kv[1])
        body.append(
            "<p>The learner's actions on the held-out episodes: "
            + ", ".join(f"{_e(k)} &times;{v}" for k, v in acts)
            + ".</p>"
        )
    if trained:
        body.append(f"<h2>Training ({_e(trained['hours'][0])}-{_e(trained['hours'][1])})</h2>")
        bandit = sorted(trained["bandit_bps"].items(), key=lambda kv: kv[1])
        body.append(
            '<div class="figure">'
            + bars_chart(bandit, "bandit: mean shortfall of each fixed setting, bps", ".2f")
            + "</div>"
        )
        if trained["curve"]:
            curve = [("iteration " + str(c["iteration"]), c["elite_bps"]) for c in trained["curve"]]
            body.append(
                '<div class="figure">'
                + bars_chart(
                    curve,
                    "cross-entropy method: elite mean shortfall, bps (each iteration on its own episodes)",
                    ".3f",
                )
                + "</div>"
            )
        body.append(
            f"<p>Started at {_e(trained['start_action'])}; the final check on fresh training "
            f"episodes kept <b>{_e(trained['kept'])}</b> ("
            + ", ".join(f"{_e(k)} {v:.3f}" for k, v in trained["validation_bps"].items())
            + "); "
            + f"{trained['episodes']} episodes in {trained['seconds']:.0f} s.</p>"
        )
    body.append(f"<p class='small muted'>Evaluated in {result['seconds']:.0f} s.</p>")
    title = escape(f"Execution: {result['instrument']}")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def write_report(path: str | Path, result: dict[str, Any], trained: dict[str, Any] | None) -> Path:
    path = Path(path)
    path.write_text(render(result, trained))
    return path
