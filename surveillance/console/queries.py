"""The inbox's filters, validated before they reach SQL (and then only as bound parameters)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, func, select

from alerts.schema import SEVERITIES, iso
from alerts.store import AlertRow, DecisionRow
from alerts.workflow import STATES
from surveillance.detection.orders import TYPOLOGIES

SORTS = ("score", "age")
PAGE_SIZES = (25, 50, 100)
MAX_PAGE = 10_000
MAX_TEXT = 64


class FilterError(ValueError):
    """A filter value the inbox does not accept (answered with 400)."""


@dataclass(frozen=True, slots=True)
class InboxFilter:
    instrument: str | None = None
    since: str | None = None  # ISO 8601 UTC bounds on the window start
    until: str | None = None
    severity: str | None = None
    state: str | None = None
    assignee: str | None = None  # a user name, or "-" for unassigned
    typology: str | None = None  # a label, or "-" for alerts without one (schema v1)
    sort: str = "age"
    descending: bool = True
    page: int = 1
    per_page: int = 25
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: dict[str, str]) -> InboxFilter:
        """From query parameters; raises ``FilterError`` naming the bad one."""

        def text(name: str) -> str | None:
            value = params.get(name, "").strip()
            if len(value) > MAX_TEXT:
                raise FilterError(f"{name}: at most {MAX_TEXT} characters")
            return value or None

        def choice(name: str, allowed: tuple[str, ...]) -> str | None:
            value = text(name)
            if value is not None and value not in allowed:
                raise FilterError(f"{name}: one of {', '.join(allowed)}")
            return value

        def when(name: str, end: bool) -> str | None:
            value = text(name)
            if value is None:
                return None
            try:
                if len(value) == 10:
                    day = dt.date.fromisoformat(value)
                    t = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
                    t += dt.timedelta(days=1) if end else dt.timedelta(0)
                else:
                    t = dt.datetime.fromisoformat(value)
                    t = t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
            except (ValueError, OverflowError):
                raise FilterError(f"{name}: a date (2012-06-21) or an ISO 8601 time") from None
            return iso(t)

        def number(name: str, default: int, lo: int, hi: int) -> int:
            value = text(name)
            if value is None:
                return default
            if not value.isdigit() or not lo <= int(value) <= hi:
                raise FilterError(f"{name}: a whole number from {lo} to {hi}")
            return int(value)

        per_page = number("per_page", 25, 1, max(PAGE_SIZES))
        if per_page not in PAGE_SIZES:
            raise FilterError(f"per_page: one of {', '.join(map(str, PAGE_SIZES))}")
        order = choice("order", ("asc", "desc")) or "desc"
        return cls(
            instrument=text("instrument"),
            since=when("from", end=False),
            until=when("to", end=True),
            severity=choice("severity", SEVERITIES),
            state=choice("state", STATES),
            assignee=text("assignee"),
            typology=choice("typology", (*TYPOLOGIES, "-")),
            sort=choice("sort", SORTS) or "age",
            descending=order == "desc",
            page=number("page", 1, 1, MAX_PAGE),
            per_page=per_page,
        )

    def query_string(self, **changes: Any) -> str:
        """The filter as query parameters (for links: paging, sorting, the live refresh)."""
        f = replace(self, **changes) if changes else self
        params = {
            "instrument": f.instrument,
            "from": f.since,
            "to": f.until,
            "severity": f.severity,
            "state": f.state,
            "assignee": f.assignee,
            "typology": f.typology,
            "sort": f.sort,
            "order": "desc" if f.descending else "asc",
            "page": f.page if f.page != 1 else None,
            "per_page": f.per_page if f.per_page != 25 else None,
        }
        return urlencode({k: v for k, v in params.items() if v is not None})


def inbox(engine: Engine, f: InboxFilter) -> tuple[list[dict[str, Any]], int]:
    """One page of alerts under the filter, and how many match in all."""
    query = select(
        AlertRow.alert_id,
        AlertRow.instrument,
        AlertRow.window_start,
        AlertRow.window_start_ns,
        AlertRow.score,
        AlertRow.p_value,
        AlertRow.severity,
        AlertRow.typology,
        AlertRow.state,
        AlertRow.assignee,
        AlertRow.disposition,
        AlertRow.stored_at,
        AlertRow.schema_version,
    )
    conditions = []
    if f.instrument:
        conditions.append(AlertRow.instrument == f.instrument)
    if f.since:
        conditions.append(AlertRow.window_start >= f.since)
    if f.until:
        conditions.append(AlertRow.window_start < f.until)
    if f.severity:
        conditions.append(AlertRow.severity == f.severity)
    if f.state:
        conditions.append(AlertRow.state == f.state)
    if f.assignee == "-":
        conditions.append(AlertRow.assignee.is_(None))
    elif f.assignee:
        conditions.append(AlertRow.assignee == f.assignee)
    if f.typology == "-":
        conditions.append(AlertRow.typology.is_(None))
    elif f.typology:
        conditions.append(AlertRow.typology == f.typology)
    query = query.where(*conditions)
    key = AlertRow.score if f.sort == "score" else AlertRow.stored_at
    primary = key.desc() if f.descending else key.asc()
    query = query.order_by(primary, AlertRow.window_start_ns.desc(), AlertRow.alert_id)
    query = query.limit(f.per_page).offset((f.page - 1) * f.per_page)
    count = select(func.count()).select_from(AlertRow).where(*conditions)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        total = int(conn.execute(count).scalar_one())
    return rows, total


def instruments(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(AlertRow.instrument).distinct().order_by(AlertRow.instrument))
            .scalars()
            .all()
        )


def alert_row(engine: Engine, alert_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(*AlertRow.__table__.columns).where(AlertRow.alert_id == alert_id)
        ).first()
    return None if row is None else dict(row._mapping)


def decision_calibration(engine: Engine, window_id: str) -> dict[str, Any] | None:
    """How the window behind an alert was calibrated (its decision row's ``calibration``:
    status, own windows, the windows behind its threshold); None when not recorded (decisions
    stored before it, or an alert without its decision)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(DecisionRow.calibration).where(DecisionRow.window_id == window_id)
        ).scalar_one_or_none()
    return dict(value) if isinstance(value, dict) else None
