"""The alert message: built from a ``WindowDecision``, validated against a versioned JSON Schema.

``schemas/alert-v{1,2}.json`` are the contract with downstream consumers (documented in
``SCHEMA.md``). Any change that a v1 consumer could not read is a new file and a new
``schema_version``; v1 stays as it is. ``build_alert`` writes version 2 (v1 plus the
order-level evidence, the typology guess, each fact's null and the charts' data);
``to_v1`` turns a v2 message back into the v1 one for a consumer not yet moved, and
``validate_alert`` accepts either version.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema

from simulator.units import NS_PER_DAY
from surveillance.detection.pipeline import WindowDecision

SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)
#: Fields v2 adds (top level) and fields a v2 fact adds: what ``to_v1`` drops.
V2_FIELDS = ("typology", "evidence", "charts", "simulation")
V2_FACT_FIELDS = ("z", "null_mean", "null_std", "p_value")
SEVERITIES = ("low", "medium", "high")
#: Namespace of alert ids: uuid5(ALERT_NAMESPACE, "instrument|start_ns|end_ns|model_version").
ALERT_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e0a-9c1f-2d8e4b6a0c13")
#: Default severity bands on the p-value: below 0.001 high, below 0.01 medium, else low.
SEVERITY_P_VALUES = (0.001, 0.01)


class AlertSchemaError(ValueError):
    """An alert message does not follow the schema."""


@cache
def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    text = resources.files("alerts").joinpath(f"schemas/alert-v{version}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def window_id(instrument: str, start_ns: int, end_ns: int, model_version: str) -> str:
    """Deterministic id of a window's decision and alert (the same for a replay and a live run)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{instrument}|{start_ns}|{end_ns}|{model_version}"))


def severity_for(p_value: float | None, bands: tuple[float, float] = SEVERITY_P_VALUES) -> str:
    """``high`` / ``medium`` / ``low`` from the p-value; no p-value is ``medium``."""
    if p_value is None:
        return "medium"
    if p_value < bands[0]:
        return "high"
    return "medium" if p_value < bands[1] else "low"


def event_time(
    ts_ns: int, *, session_date: dt.date | None = None, tz: str = "America/New_York"
) -> dt.datetime:
    """UTC time of a feed timestamp.

    A feed's ``ts_ns`` is either nanoseconds since the Unix epoch (UTC), or, for LOBSTER,
    nanoseconds since midnight of ``session_date`` in the exchange time zone ``tz``.
    Sub-microsecond digits are truncated (datetime holds microseconds).
    """
    if session_date is not None and ts_ns < NS_PER_DAY:
        midnight = dt.datetime.combine(session_date, dt.time(), tzinfo=ZoneInfo(tz))
        local = midnight + dt.timedelta(microseconds=ts_ns // 1000)
        return local.astimezone(dt.UTC)
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_ns // 1000)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def build_alert(
    decision: WindowDecision,
    *,
    config_version: str,
    session_date: dt.date | None = None,
    tz: str = "America/New_York",
    severity: str | None = None,
) -> dict[str, Any]:
    """The alert message of a decision (whether or not it alerted; callers publish alerts)."""
    detail = decision.verdict.detail
    nulls = detail.get("facts", {}) if isinstance(detail, dict | Mapping) else {}
    facts = [
        {
            "name": name,
            "overlap": float(overlap),
            "expected": _opt_float(decision.verdict.expected.get(name)),
            "diverged": name in decision.verdict.diverged,
            **{k: _finite(nulls.get(name, {}).get(k)) for k in V2_FACT_FIELDS},
        }
        for name, overlap in sorted(decision.verdict.facts.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    orders = detail.get("orders") or {}
    charts = detail.get("evidence") or None
    if severity is None:
        severity = (
            decision.verdict.severity
            if decision.verdict.severity in SEVERITIES
            else severity_for(decision.verdict.p_value)
        )
    alert = {
        "schema_version": SCHEMA_VERSION,
        "alert_id": window_id(
            decision.instrument, decision.start_ns, decision.end_ns, decision.model_version
        ),
        "instrument": decision.instrument,
        "window": _window_of(decision, session_date, tz),
        "score": _opt_float(decision.verdict.score),
        "p_value": _opt_float(decision.verdict.p_value),
        "severity": severity,
        "threshold": _opt_float(decision.verdict.threshold),
        "facts": facts,
        "diverged_facts": list(decision.verdict.diverged),
        "baselines": {k: _opt_float(v) for k, v in sorted(decision.verdict.baselines.items())},
        "model_version": decision.model_version,
        "config_version": config_version,
        "n_events": decision.n_events,
        "typology": orders.get("typology")
        or {"label": "none", "reason": "No order-level evidence was recorded for this window."},
        "evidence": _clean(orders.get("facts", [])),
        "charts": _clean(charts) if charts else None,
    }
    check = detail.get("simulation") if isinstance(detail, dict | Mapping) else None
    if isinstance(check, dict | Mapping):  # only where checked: see SCHEMA.md, compatibility
        alert["simulation"] = _clean(dict(check))
    validate_alert(alert)
    return alert


def quality_record(
    decision: WindowDecision,
    *,
    session_date: dt.date | None = None,
    tz: str = "America/New_York",
) -> dict[str, Any] | None:
    """The data-quality record of a window decided as degraded (it saw a feed fault, or opened
    on a book still suspect after one), or None for any other decision. It names the window as
    its alert would (``record_id`` is the window id) and says why no score was given."""
    detail = decision.verdict.detail
    if not isinstance(detail, dict | Mapping) or detail.get("status") != "degraded":
        return None
    faults = detail.get("faults")
    counts = {
        str(k): int(v)
        for k, v in (faults.items() if isinstance(faults, dict | Mapping) else ())
        if isinstance(v, int | float) and math.isfinite(v)
    }  # what a window record from another worker carries is not trusted to be well formed
    return {
        "record": "data_quality",
        "record_id": window_id(
            decision.instrument, decision.start_ns, decision.end_ns, decision.model_version
        ),
        "instrument": decision.instrument,
        "window": _window_of(decision, session_date, tz),
        "status": "degraded",
        "reason": str(detail.get("skipped") or "book suspect"),
        "faults": counts,
        "n_events": decision.n_events,
        "model_version": decision.model_version,
    }


def decision_record(
    decision: WindowDecision,
    *,
    session_date: dt.date | None = None,
    tz: str = "America/New_York",
) -> dict[str, Any]:
    """The record of a window's decision, alert or not, for the decisions topic: what a
    downstream system needs to see that every window was decided and how (the alert itself,
    with its evidence, is on the alert topic under the same id)."""
    verdict = decision.verdict
    detail = verdict.detail if isinstance(verdict.detail, dict | Mapping) else {}
    calibration = detail.get("calibration")
    status = detail.get("status")
    if not isinstance(status, str):
        status = "scored" if verdict.score is not None else "unscored"
    return {
        "record": "decision",
        "window_id": window_id(
            decision.instrument, decision.start_ns, decision.end_ns, decision.model_version
        ),
        "instrument": decision.instrument,
        "window": _window_of(decision, session_date, tz),
        "status": status,
        "reason": _opt_str(detail.get("skipped")),
        "alert": bool(verdict.alert),
        "score": _finite(verdict.score),
        "threshold": _finite(verdict.threshold),
        "p_value": _finite(verdict.p_value),
        "severity": str(verdict.severity),
        # how well the threshold is known: calibrated, pooled, adapting or adapted
        "calibration": _opt_str(calibration.get("status"))
        if isinstance(calibration, dict | Mapping)
        else None,
        # whether the rollouts looked like the market at all (``scoring.simulation_check``)
        "simulation": _simulation_status(detail.get("simulation")),
        "n_events": decision.n_events,
        "model_version": decision.model_version,
    }


def _simulation_status(check: Any) -> str | None:
    if not isinstance(check, dict | Mapping) or "faithful" not in check:
        return None
    return "faithful" if check["faithful"] else "off"


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _window_of(decision: WindowDecision, session_date: dt.date | None, tz: str) -> dict[str, Any]:
    return {
        "start": iso(event_time(decision.start_ns, session_date=session_date, tz=tz)),
        "end": iso(event_time(decision.end_ns, session_date=session_date, tz=tz)),
        "start_ns": decision.start_ns,
        "end_ns": decision.end_ns,
    }


def to_v1(alert: dict[str, Any]) -> dict[str, Any]:
    """The v1 message of a v1 or v2 alert (what a consumer not yet moved to v2 reads)."""
    if alert.get("schema_version") == 1:
        return alert
    out = {k: v for k, v in alert.items() if k not in V2_FIELDS}
    out["schema_version"] = 1
    out["facts"] = [
        {k: v for k, v in f.items() if k not in V2_FACT_FIELDS} for f in alert.get("facts", [])
    ]
    validate_alert(out)
    return out


def validate_alert(alert: Any) -> None:
    """Raise ``AlertSchemaError`` (naming the offending field) unless ``alert`` follows the
    schema version it names (1 or 2)."""
    version = alert.get("schema_version") if isinstance(alert, dict) else None
    if version not in SCHEMA_VERSIONS or isinstance(version, bool):
        raise AlertSchemaError(
            f"alert schema_version: {version!r} is not one of {list(SCHEMA_VERSIONS)}"
        )
    validator = jsonschema.Draft202012Validator(load_schema(version))
    errors = sorted(validator.iter_errors(alert), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise AlertSchemaError(f"alert {where}: {first.message}")
    # What JSON Schema cannot say.
    window = alert["window"]
    for key in ("start", "end"):
        try:
            dt.datetime.fromisoformat(window[key])
        except ValueError:
            raise AlertSchemaError(f"alert window/{key}: not ISO 8601: {window[key]!r}") from None
    if window["end_ns"] <= window["start_ns"]:
        raise AlertSchemaError("alert window: end_ns must be after start_ns")
    names = {f["name"] for f in alert["facts"]}
    unknown = [n for n in alert["diverged_facts"] if n not in names]
    if unknown:
        raise AlertSchemaError(f"alert diverged_facts: not among facts: {unknown}")
    if not math.isfinite(alert["score"]):
        raise AlertSchemaError("alert score: must be finite")


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _finite(value: Any) -> float | None:
    """A number JSON can carry: NaN and infinities (an undefined null statistic) become null."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x
