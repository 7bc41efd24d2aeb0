"""The ``DemoReport`` rendered for a person: the summary printed at the end of the demo."""

from __future__ import annotations

import statistics
from typing import Any

from surveillance.cli.demo.base import DemoReport, _clock


def scoring_line(recent: list[dict[str, Any]]) -> str | None:
    """How long the scorer took per window (measured by the worker, ``recent_windows``): the
    simulation's cost on this machine, which sets how long the demo runs."""
    seconds = sorted(w["score_s"] for w in recent if w.get("score_s") is not None)
    if not seconds:
        return None
    return (
        f"scoring   {statistics.median(seconds):.1f} s per window (median of {len(seconds)}; slowest "
        f"{seconds[-1]:.1f} s), windows scored in parallel by the worker's scorer processes"
    )


def format_summary(r: DemoReport) -> str:
    """The human summary printed at the end of the demo."""
    counts, timing = r.worker["counts"], r.worker.get("timing", {})
    dead = r.worker.get("dead_letters", {})
    lines = [
        "",
        f"=== surveillance demo: {r.instrument} {r.date or ''} ({r.path.name}) ===",
        f"feed      {r.events:,} events {_clock(r.first_ts_ns)}-{_clock(r.last_ts_ns)} "
        f"published in {r.publish_s:.1f} s "
        f"({'max speed' if r.speed is None else f'{r.speed:g}x'})",
    ]
    if r.injected:
        i = r.injected
        lines.append(
            f"injected  {i['typology']} {_clock(i['start_ns'])}-{_clock(i['end_ns'])}, "
            f"intensity {i['intensity']:g}: {i['injected_events']:,} events, "
            f"{i['injected_orders']:,} orders"
        )
    rate = timing.get("events_per_s")
    lines += [
        f"scorer    {r.generator} generator ({r.model_version}), {r.rollouts} rollouts, "
        f"{r.window} windows; calibration: {r.calibration}",
        f"worker    {counts.get('events', 0):,} events consumed"
        + (
            f" at {rate:,.0f} events/s (first to last record; paced by the feed), "
            f"{timing.get('busy_s', 0):.1f} s of it in the core"
            if rate
            else ""
        )
        + f", dead letters: {sum(dead.values())}"
        + (f" {dead}" if dead else ""),
        f"windows   {len(r.decisions)} decided of {counts.get('windows_closed', 0)} closed, "
        f"{len(r.alerts)} alert(s)",
    ]
    if line := scoring_line(r.worker.get("recent_windows", [])):
        lines.append(line)
    alerted = {a["alert_id"] for a in r.alerts}
    lines.append("")
    lines.append(f"  {'window':<19} {'events':>7} {'score':>7}  alert")
    from alerts.schema import window_id

    for d in r.decisions:
        score = "-" if d["score"] is None else f"{d['score']:.2f}"
        wid = window_id(d["instrument"], d["window_start_ns"], d["window_end_ns"], r.model_version)
        mark = "ALERT" if wid in alerted else ""
        lines.append(
            f"  {_clock(d['window_start_ns'])}-{_clock(d['window_end_ns'])} "
            f"{d['n_events']:>7,} {score:>7}  {mark}"
        )
    for a in r.alerts:
        w = a["window"]
        top = ", ".join(
            f"{f['name']} {f['overlap']:.2f} (expected {f['expected']:.2f})"
            if f.get("expected") is not None
            else f"{f['name']} {f['overlap']:.2f}"
            for f in a["facts"][:3]
        )
        lines += [
            "",
            f"ALERT {a['alert_id']}",
            f"  {a['instrument']} window {_clock(w['start_ns'])}-{_clock(w['end_ns'])} "
            f"({w['start']} .. {w['end']})",
            f"  score {a['score']:.3f} (threshold {a['threshold']:.3f}), severity "
            f"{a['severity']}, p-value "
            f"{'-' if a['p_value'] is None else format(a['p_value'], '.3g')}",
            f"  diverged facts: {', '.join(a['diverged_facts']) or 'none'}",
            f"  lowest overlaps: {top}",
        ]
    if r.injected:
        i = r.injected
        hit = [
            d
            for d in r.decisions
            if d["window_start_ns"] < i["end_ns"] and d["window_end_ns"] > i["start_ns"]
        ]
        for d in hit:
            wid = window_id(
                d["instrument"], d["window_start_ns"], d["window_end_ns"], r.model_version
            )
            score = "no score" if d["score"] is None else f"score {d['score']:.2f}"
            verdict = "ALERT" if wid in alerted else "no alert: not detected by this model"
            lines.append(
                f"injected window {_clock(d['window_start_ns'])}-{_clock(d['window_end_ns'])}: "
                f"{score} -> {verdict}"
            )
    check = "OK" if r.consistent else "MISMATCH"
    lines += [
        "",
        f"alert topic  {r.topic_alerts} message(s), {r.topic_alert_ids} distinct alert id(s); "
        f"store {len(r.alerts)} alert(s): {check}",
        f"stored in    {r.store} (tables alerts, window_decisions, data_quality, and the console's)",
        f"logs in      {r.workdir}",
        f"done in {r.seconds:.0f} s; broker and worker stopped",
    ]
    lines += [f"note: {n}" for n in r.notes]
    # the compliance console opens the same store (users first: surveillance user add)
    lines += [
        "",
        "open the alerts in the compliance console:",
        f"  surveillance user add NAME --role analyst --store {r.store}",
        f"  surveillance console --store {r.store}",
    ]
    return "\n".join(lines)
