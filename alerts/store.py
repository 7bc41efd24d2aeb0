"""SQL store of alerts and of every window's decision (SQLAlchemy 2; SQLite by default).

    store = AlertStore("sqlite:///alerts.db")      # or postgresql+psycopg2://...
    store.create_schema()
    store.put(alert=message)                        # True if new, False if already stored
    store.put_decision(decision=decision)           # one row per closed window, alert or not

Writes are idempotent on the deterministic window id (``alerts.schema.window_id``): a replay
or a redelivered message stores nothing twice. Insert-or-ignore is native on SQLite and
PostgreSQL (``ON CONFLICT DO NOTHING``); other dialects insert and catch the unique violation.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import math
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from alerts.schema import iso, validate_alert, window_id
from surveillance.detection.pipeline import WindowDecision


class Base(DeclarativeBase):
    pass


class AlertRow(Base):
    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(64))
    window_start_ns: Mapped[int] = mapped_column(BigInteger)
    window_end_ns: Mapped[int] = mapped_column(BigInteger)
    window_start: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, as in the message
    score: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    severity: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(128))
    config_version: Mapped[str] = mapped_column(String(128))
    schema_version: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)  # the alert JSON, verbatim
    stored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # Added by migration 0002 (the console's case workflow): the typology guess of a v2 alert
    # (null for v1 alerts), and the case's state, assignee and disposition. The workflow's own
    # tables are in ``alerts.workflow``; every change to these columns is audited there.
    typology: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    assignee: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_alerts_instrument_window", "instrument", "window_start_ns"),
        Index("ix_alerts_state", "state"),
    )


class DecisionRow(Base):
    __tablename__ = "window_decisions"

    window_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(64))
    window_start_ns: Mapped[int] = mapped_column(BigInteger)
    window_end_ns: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str] = mapped_column(String(128))
    alert: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_events: Mapped[int] = mapped_column(Integer)
    closed_by: Mapped[str] = mapped_column(String(16))
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # the threshold the window was read against and how it was calibrated (status: calibrated,
    # pooled, adapting, adapted; the windows behind its norms and threshold)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # whether the rollouts looked like the market (``scoring.simulation_check``)
    simulation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (Index("ix_decisions_instrument_window", "instrument", "window_start_ns"),)


class QualityRow(Base):
    """A window decided as degraded (migration 0004): why it was not scored, and the feed
    faults behind it (``alerts.schema.quality_record``, also published on the data-quality
    topic)."""

    __tablename__ = "data_quality"

    record_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the window id
    instrument: Mapped[str] = mapped_column(String(64))
    window_start_ns: Mapped[int] = mapped_column(BigInteger)
    window_end_ns: Mapped[int] = mapped_column(BigInteger)
    model_version: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    faults: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text)  # the record JSON, verbatim
    stored_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_quality_instrument_window", "instrument", "window_start_ns"),)


class AlertStore:
    """Alerts and window decisions in any SQLAlchemy database URL."""

    def __init__(self, url: str = "sqlite:///surveillance-alerts.db", *, echo: bool = False):
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            # The worker writes from an executor thread.
            kwargs["connect_args"] = {"check_same_thread": False}
        self.url = url
        self.engine = create_engine(url, **kwargs)

    def create_schema(self) -> None:
        """Bring the database to the current schema: create it (a new store), or run the
        Alembic migrations (a store written by an earlier release keeps its alerts)."""
        from alerts.migrate import migrate

        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def put(self, *, alert: dict[str, Any]) -> bool:
        """Store a validated alert; ``False`` if one with its id is already stored."""
        validate_alert(alert)
        window = alert["window"]
        row = {
            "alert_id": alert["alert_id"],
            "instrument": alert["instrument"],
            "window_start_ns": window["start_ns"],
            "window_end_ns": window["end_ns"],
            "window_start": window["start"],
            "score": alert["score"],
            "p_value": alert["p_value"],
            "severity": alert["severity"],
            "model_version": alert["model_version"],
            "config_version": alert["config_version"],
            "schema_version": alert["schema_version"],
            "message": json.dumps(alert, sort_keys=True),
            "stored_at": dt.datetime.now(dt.UTC),
            "typology": (alert.get("typology") or {}).get("label"),
            "state": "new",
        }
        return self._insert_or_ignore(AlertRow, row)

    def put_quality(self, *, record: dict[str, Any]) -> bool:
        """Store a data-quality record (``alerts.schema.quality_record``); ``False`` if that
        window's is already stored."""
        window = record["window"]
        row = {
            "record_id": record["record_id"],
            "instrument": record["instrument"],
            "window_start_ns": window["start_ns"],
            "window_end_ns": window["end_ns"],
            "model_version": record["model_version"],
            "status": record["status"],
            "reason": record["reason"],
            "faults": record["faults"],
            "message": json.dumps(record, sort_keys=True),
            "stored_at": dt.datetime.now(dt.UTC),
        }
        return self._insert_or_ignore(QualityRow, row)

    def put_decision(self, *, decision: WindowDecision) -> bool:
        """Record a window's decision; ``False`` if that window was already decided."""
        row = {
            "window_id": window_id(
                decision.instrument, decision.start_ns, decision.end_ns, decision.model_version
            ),
            "instrument": decision.instrument,
            "window_start_ns": decision.start_ns,
            "window_end_ns": decision.end_ns,
            "model_version": decision.model_version,
            "alert": decision.verdict.alert,
            "score": decision.verdict.score,
            "p_value": decision.verdict.p_value,
            "n_events": decision.n_events,
            "closed_by": decision.closed_by,
            "facts": {k: float(v) for k, v in decision.verdict.facts.items()},
            "decided_at": dt.datetime.now(dt.UTC),
            "threshold": decision.verdict.threshold,
            "calibration": _json_safe((decision.verdict.detail or {}).get("calibration")),
            "simulation": _json_safe((decision.verdict.detail or {}).get("simulation")),
        }
        return self._insert_or_ignore(DecisionRow, row)

    def _insert_or_ignore(self, model: type[Base], row: dict[str, Any]) -> bool:
        table: Table = model.__table__  # type: ignore[assignment]
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            module = sqlite if dialect == "sqlite" else postgresql
            stmt = module.insert(table).values(**row).on_conflict_do_nothing()
            with self.engine.begin() as conn:
                return conn.execute(stmt).rowcount == 1
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table).values(**row))
            return True
        except IntegrityError:
            return False

    # ------------------------------------------------------------------ reads
    def get(self, *, alert_id: str) -> dict[str, Any] | None:
        """The stored alert message, or ``None``."""
        with self.engine.connect() as conn:
            text = conn.execute(
                select(AlertRow.message).where(AlertRow.alert_id == alert_id)
            ).scalar_one_or_none()
        return None if text is None else json.loads(text)

    def list(
        self,
        *,
        instrument: str | None = None,
        since: dt.datetime | int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alerts, newest window first.

        ``since`` keeps windows starting at or after it: a timezone-aware datetime, or an int
        in the feed's ``ts_ns`` units.
        """
        query = select(AlertRow.message)
        if instrument is not None:
            query = query.where(AlertRow.instrument == instrument)
        if isinstance(since, dt.datetime):
            if since.tzinfo is None:
                raise ValueError("since must be timezone-aware")
            query = query.where(AlertRow.window_start >= iso(since))
        elif since is not None:
            query = query.where(AlertRow.window_start_ns >= since)
        query = query.order_by(
            AlertRow.window_start_ns.desc(), AlertRow.instrument, AlertRow.alert_id
        ).limit(limit)
        with self.engine.connect() as conn:
            return [json.loads(text) for text in conn.execute(query).scalars()]

    def decisions(
        self, *, instrument: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Window decisions in window order (to check that every window got one)."""
        query = select(*DecisionRow.__table__.columns)
        if instrument is not None:
            query = query.where(DecisionRow.instrument == instrument)
        query = query.order_by(DecisionRow.instrument, DecisionRow.window_start_ns)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def quality(self, *, instrument: str | None = None) -> builtins.list[dict[str, Any]]:
        """Data-quality records (degraded windows) in window order, each as published."""
        query = select(QualityRow.message)
        if instrument is not None:
            query = query.where(QualityRow.instrument == instrument)
        query = query.order_by(QualityRow.instrument, QualityRow.window_start_ns)
        with self.engine.connect() as conn:
            return [json.loads(row[0]) for row in conn.execute(query)]

    def calibrations(
        self, instrument: str, model_version: str
    ) -> builtins.list[dict[str, Any] | None]:
        """The ``calibration`` record of each of ``instrument``'s decisions by
        ``model_version``, in window order (what a worker rebuilds a cold instrument's own
        windows from: another model's facts are another simulation's)."""
        query = (
            select(DecisionRow.calibration)
            .where(DecisionRow.instrument == instrument)
            .where(DecisionRow.model_version == model_version)
            .order_by(DecisionRow.window_start_ns)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def decided(self, window_ids: builtins.list[str]) -> set[str]:
        """Which of ``window_ids`` already have a decision (a primary-key lookup, in chunks
        that stay under every database's bound-parameter limit)."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(window_ids), 500):
                chunk = window_ids[i : i + 500]
                query = select(DecisionRow.window_id).where(DecisionRow.window_id.in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def count(self) -> tuple[int, int]:
        """``(alerts, decisions)`` stored."""
        with self.engine.connect() as conn:
            alerts = conn.execute(select(func.count()).select_from(AlertRow)).scalar_one()
            decisions = conn.execute(select(func.count()).select_from(DecisionRow)).scalar_one()
        return int(alerts), int(decisions)


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON columns refuse NaN on some databases)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
