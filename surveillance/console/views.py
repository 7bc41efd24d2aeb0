"""What the alert page shows, computed from the stored message: the report's two charts, the
facts against their null, the evidence rows and the evidence timeline (inline SVG)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from markupsafe import Markup

from surveillance.console.export import evidence_rows
from surveillance.report import REAL, SIM, price_chart, spread_chart

KIND_COLOUR = {"order": REAL, "burst": "#7b3294", "sweep": "#e08214"}
TIMELINE_WIDTH = 1100


def _clock(window: dict[str, Any], ts_ns: Any) -> str:
    """``HH:MM:SS.mmm`` UTC of a feed time inside the alert's window."""
    try:
        start = dt.datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
        t = start + dt.timedelta(microseconds=(int(ts_ns) - int(window["start_ns"])) // 1000)
    except (KeyError, TypeError, ValueError, OverflowError):
        return "–"
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def timeline_svg(alert: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One lane per diverged fact across the window: orders as dots (area ~ size), bursts as
    bars from start to end, sweeps as triangles. Each mark's title names it."""
    window = alert.get("window", {})
    t0, t1 = window.get("start_ns"), window.get("end_ns")
    facts = list(dict.fromkeys(r["fact"] for r in rows if r.get("ts_ns") is not None))
    if not isinstance(t0, int) or not isinstance(t1, int) or t1 <= t0 or not facts:
        return '<p class="muted">No timed evidence to draw.</p>'
    left, right, lane = 170, 20, 26
    width = TIMELINE_WIDTH
    height = 30 + lane * len(facts)
    span = width - left - right

    def x(ts: int) -> float:
        return left + span * min(max((ts - t0) / (t1 - t0), 0.0), 1.0)

    sizes = [r.get("size") or 0 for r in rows if r["kind"] == "order"]
    biggest = max(sizes, default=1) or 1
    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" width="100%" role="img" '
        'aria-label="evidence timeline">'
    ]
    for i in range(6):  # minute ticks along the top
        ts = t0 + (t1 - t0) * i // 5
        parts.append(
            f'<line x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="18" y2="{height}" stroke="#e3e7ec"/>'
            f'<text x="{x(ts):.1f}" y="12" font-size="11" text-anchor="middle" fill="#5b6573">'
            f"{escape(_clock(window, ts)[:8])}</text>"
        )
    for lane_i, fact in enumerate(facts):
        y = 30 + lane * lane_i + lane / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
            f"{escape(fact.replace('_', ' '))}</text>"
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d8dde4"/>'
        )
        for r in rows:
            if r["fact"] != fact or r.get("ts_ns") is None:
                continue
            colour = KIND_COLOUR.get(r["kind"], SIM)
            cx = x(int(r["ts_ns"]))
            anchor = f' data-row="{escape(str(r["row_id"]))}"'
            if r["kind"] == "burst":
                x2 = x(int(r.get("end_ns") or r["ts_ns"]))
                title = f"burst {r.get('messages')} messages, {r.get('cancels')} cancels"
                parts.append(
                    f'<rect x="{cx:.1f}" y="{y - 7:.1f}" width="{max(x2 - cx, 3):.1f}" '
                    f'height="14" fill="{colour}" opacity="0.7"{anchor}><title>'
                    f"{escape(title)}</title></rect>"
                )
            elif r["kind"] == "sweep":
                title = f"sweep {r.get('side')} {r.get('size')} shares (x{r.get('ratio')} touch)"
                parts.append(
                    f'<path d="M{cx:.1f},{y - 8:.1f} L{cx + 6:.1f},{y + 6:.1f} '
                    f'L{cx - 6:.1f},{y + 6:.1f} Z" fill="{colour}"{anchor}><title>'
                    f"{escape(title)}</title></path>"
                )
            else:
                radius = 3 + 6 * ((r.get("size") or 0) / biggest) ** 0.5
                title = (
                    f"{r.get('event')} {r.get('order_id')} {r.get('side')} {r.get('size')} @ "
                    f"{r.get('price')} ({r.get('ended')})"
                )
                parts.append(
                    f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" '
                    f'fill-opacity="0.55" stroke="{colour}"{anchor}><title>{escape(title)}'
                    "</title></circle>"
                )
    parts.append("</svg>")
    return "".join(parts)


def alert_view(alert: dict[str, Any]) -> dict[str, Any]:
    window = alert.get("window", {})
    rows = evidence_rows(alert)
    for i, r in enumerate(rows):
        r["row_id"] = f"ev{i}"
        r["clock"] = _clock(window, r.get("ts_ns")) if r.get("ts_ns") is not None else "–"
    charts = alert.get("charts") or {}
    facts = {f["name"]: f for f in alert.get("facts", [])}
    spread = facts.get("spread_time_weighted", {})
    ovl = spread.get("overlap")
    ovl_text = "Distribution similarity (OVL): " + ("–" if ovl is None else f"{ovl:.3f}")
    has_charts = bool(charts)
    return {
        "rows": rows,
        "timeline": Markup(timeline_svg(alert, rows)),
        "spread_chart": Markup(
            spread_chart(charts.get("spread_real"), charts.get("spread_sim"), ovl_text)
        )
        if has_charts
        else None,
        "price_chart": Markup(price_chart(charts.get("price_real"), charts.get("price_fan")))
        if has_charts
        else None,
        "typology": alert.get("typology"),
        "evidence_facts": alert.get("evidence"),
        "version": alert.get("schema_version"),
    }
