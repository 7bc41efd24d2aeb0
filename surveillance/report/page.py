"""Assembly of the report page: header, summary, window sections, and the entry points."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from surveillance.report.assets import CSS, SCRIPT
from surveillance.report.charts import (
    heatmap_chart,
    null_strip,
    price_chart,
    spread_chart,
    timeline_chart,
)
from surveillance.report.records import (
    FACT_INFO,
    _dict,
    _fact_name,
    _fact_order,
    _list,
    _num,
    _Window,
)
from surveillance.report.svg import _e, _fmt, _fmt_p


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
