"""Case export: per alert a JSON case file (the alert with its evidence, the case, comments and
audit trail), the investigator's HTML report and the evidence as CSV; a selection is a zip of
one folder per alert plus a manifest with every file's SHA-256."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from typing import Any

from surveillance.report import render_report

CSV_COLUMNS = (
    "fact",
    "kind",
    "order_id",
    "ts_ns",
    "end_ns",
    "event",
    "side",
    "price",
    "size",
    "lifetime_s",
    "distance_ticks",
    "ended",
    "messages",
    "cancels",
    "per_second",
    "touch_shares",
    "ratio",
    "mid_after_30s",
)


def evidence_rows(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per order, burst or sweep of a v2 alert (none for v1)."""
    rows: list[dict[str, Any]] = []
    for entry in alert.get("evidence") or []:
        fact, kind = entry.get("fact"), entry.get("kind")
        for o in entry.get("orders") or []:
            rows.append({"fact": fact, "kind": "order", **o})
        for b in entry.get("bursts") or []:
            rows.append(
                {
                    "fact": fact,
                    "kind": "burst",
                    "ts_ns": b.get("start_ns"),
                    "end_ns": b.get("end_ns"),
                    "messages": b.get("messages"),
                    "cancels": b.get("cancels"),
                    "per_second": b.get("per_second"),
                    "order_id": " ".join(str(i) for i in b.get("order_ids") or []),
                }
            )
        for s in entry.get("sweeps") or []:
            rows.append(
                {
                    "fact": fact,
                    "kind": "sweep",
                    **{k: v for k, v in s.items() if k != "mid_after"},
                    "mid_after_30s": (s.get("mid_after") or {}).get("30s"),
                }
            )
        if kind == "window":
            rows.append({"fact": fact, "kind": "window"})
    return rows


def _safe_cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts with = + - @ as a formula: quote such text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def evidence_csv(alert: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in evidence_rows(alert):
        writer.writerow({k: _safe_cell(row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


def report_record(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert as one window record of the investigator's report."""
    window = alert.get("window", {})
    return {
        "instrument": alert.get("instrument"),
        "window_start": window.get("start"),
        "window_end": window.get("end"),
        "window_start_ns": window.get("start_ns"),
        "window_end_ns": window.get("end_ns"),
        "score": alert.get("score"),
        "p_value": alert.get("p_value"),
        "threshold": alert.get("threshold"),
        "alert": True,
        "severity": alert.get("severity"),
        "facts": {
            f["name"]: {
                "ovl": f.get("overlap"),
                "null_mean": f.get("null_mean", f.get("expected")),
                "null_std": f.get("null_std"),
                "z": f.get("z"),
                "p_value": f.get("p_value"),
            }
            for f in alert.get("facts", [])
        },
        "diverged": alert.get("diverged_facts", []),
        "baselines": alert.get("baselines", {}),
        "evidence": alert.get("charts") or {},
        "n_events": alert.get("n_events"),
        "model_version": alert.get("model_version"),
    }


def report_html(alert: dict[str, Any]) -> str:
    return render_report(
        [report_record(alert)],
        {"title": f"Alert {alert.get('alert_id')}", "model_version": alert.get("model_version")},
    )


def case_file(
    alert: dict[str, Any],
    case: dict[str, Any],
    comments: list[dict[str, Any]],
    trail: list[dict[str, Any]],
    chain: tuple[bool, int, int | None],
    exported_by: str,
) -> dict[str, Any]:
    return {
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "exported_by": exported_by,
        "alert": alert,
        "case": case,
        "comments": comments,
        "audit_trail": trail,
        "audit_chain": {"intact": chain[0], "entries": chain[1], "first_broken_seq": chain[2]},
    }


def bundle(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> bytes:
    """A zip of ``(alert, case file)`` pairs: ``<alert_id>/case.json``, ``report.html``,
    ``evidence.csv`` each, and ``MANIFEST.json`` with every file's SHA-256."""
    buffer = io.BytesIO()
    manifest: dict[str, str] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for alert, case in cases:
            folder = str(alert["alert_id"])
            files = {
                "case.json": json.dumps(case, indent=2, sort_keys=True, default=str),
                "report.html": report_html(alert),
                "evidence.csv": evidence_csv(alert),
            }
            for name, text in files.items():
                data = text.encode()
                manifest[f"{folder}/{name}"] = hashlib.sha256(data).hexdigest()
                z.writestr(f"{folder}/{name}", data)
        z.writestr("MANIFEST.json", json.dumps({"sha256": manifest}, indent=2, sort_keys=True))
    return buffer.getvalue()
