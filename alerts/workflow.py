"""The case workflow over the alert store: users, sessions, API tokens, comments and the
tamper-evident audit trail (the console's data; ``surveillance.console`` is its web face).

States and actions (``Workflow.act``)::

    new --take--> in_review --escalate--> escalated --close (supervisor, four eyes)--> closed
     |                |                                                               ^
     +---escalate-----+--------------------close (analyst or supervisor)--------------+
    closed --reopen (supervisor)--> in_review;  assign and comment in any open state

- A reason is required to escalate, close and reopen; a disposition to close
  (``DISPOSITIONS``).
- Four eyes: an escalated alert is closed by a supervisor who neither escalated it nor is its
  assignee.
- Every action, and every user or token change, appends one ``audit_log`` entry: who, when,
  what, the case before and after, the reason. Each entry's hash covers the previous entry's
  hash, so an edit anywhere breaks every later link (``verify_chain``); ``prev_hash`` is unique,
  so two writers can never both extend the same entry, and database triggers refuse UPDATE
  and DELETE on the table.

Passwords are argon2id hashes (``argon2-cffi``); session ids and API tokens are random 256-bit
values of which only the SHA-256 is stored, so a copy of the database holds no usable secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from alerts.store import AlertRow, Base

ROLES = ("analyst", "supervisor", "admin")
STATES = ("new", "in_review", "escalated", "closed")
DISPOSITIONS = ("false_positive", "no_further_action", "suspicious_report_to_regulator")
ACTIONS = ("take", "assign", "escalate", "close", "reopen", "comment")
GENESIS = "0" * 64  # the previous hash of the first audit entry
SESSION_HOURS = 8
MAX_REASON = 4000
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


def password_hasher() -> PasswordHasher:
    """argon2id with the library's current defaults (RFC 9106's low-memory profile)."""
    return PasswordHasher()


class WorkflowError(ValueError):
    """An action the workflow refuses (bad state, missing reason, four-eyes rule)."""


class PermissionDenied(WorkflowError):
    """The user's role may not do this."""


class UserRow(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TokenRow(Base):
    __tablename__ = "console_api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id"))
    label: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class CommentRow(Base):
    __tablename__ = "alert_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(36), index=True)
    author: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[str] = mapped_column(Text)


class AuditRow(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC: hashed as text, exactly
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    alert_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    before: Mapped[str] = mapped_column(Text)  # canonical JSON
    after: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_audit_alert", "alert_id"),)


WORKFLOW_TABLES = (UserRow, SessionRow, TokenRow, CommentRow, AuditRow)

# Append-only at the database too: a console bug or a hand-typed UPDATE cannot rewrite history.
_SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)
_POSTGRES_GUARDS = (
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log",
    "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
)


def guard_statements(dialect: str) -> tuple[str, ...]:
    return {"sqlite": _SQLITE_GUARDS, "postgresql": _POSTGRES_GUARDS}.get(dialect, ())


def install_guards(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in guard_statements(engine.dialect.name):
            conn.execute(text(statement))


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str

    def can(self, *roles: str) -> bool:
        return self.role in roles


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def entry_hash(prev_hash: str, at: str, actor: str, action: str, alert_id: str | None,
               before: str, after: str, reason: str) -> str:  # fmt: skip
    """The hash of one audit entry: SHA-256 of the previous hash and the entry's fields."""
    body = _canonical([prev_hash, at, actor, action, alert_id or "", before, after, reason])
    return sha256(body)


def check_name(name: str) -> str:
    """User names: 1 to 64 of lower-case letters, digits, ``.``, ``_``, ``-``."""
    if not 1 <= len(name) <= 64 or not set(name) <= NAME_CHARS:
        raise WorkflowError("a user name is 1 to 64 characters of a-z, 0-9, '.', '_' and '-'")
    return name


class Workflow:
    """Users, sessions, tokens, case actions and the audit trail, on an ``AlertStore``'s engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.hasher = password_hasher()
        # one writer at a time extends the chain in this process; the unique prev_hash stops
        # a second process from forking it (its insert fails and is retried)
        self._audit_lock = threading.Lock()

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: str, password: str, *, actor: str = "cli") -> User:
        check_name(name)
        if role not in ROLES:
            raise WorkflowError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 12:
            raise WorkflowError("a password has at least 12 characters")
        row = {
            "name": name,
            "role": role,
            "password_hash": self.hasher.hash(password),
            "active": True,
            "created_at": _now(),
        }
        try:
            with self.engine.begin() as conn:
                uid = conn.execute(insert(UserRow).values(**row)).inserted_primary_key[0]
        except IntegrityError:
            raise WorkflowError(f"user {name!r} exists already") from None
        self.audit(actor, "user_add", None, {}, {"user": name, "role": role})
        return User(int(uid), name, role)

    def set_active(self, name: str, active: bool, *, actor: str) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(UserRow).where(UserRow.name == name).values(active=active)
            ).rowcount
            if not active:
                uid = conn.execute(select(UserRow.id).where(UserRow.name == name)).scalar()
                conn.execute(SessionRow.__table__.delete().where(SessionRow.user_id == uid))
        if n != 1:
            raise WorkflowError(f"no user {name!r}")
        self.audit(actor, "user_active", None, {"user": name}, {"user": name, "active": active})

    def users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(UserRow.name, UserRow.role, UserRow.active, UserRow.created_at).order_by(
                    UserRow.name
                )
            ).mappings()
            return [dict(r) for r in rows]

    def user_names(self, role: str | None = None) -> list[str]:
        query = select(UserRow.name).where(UserRow.active.is_(True)).order_by(UserRow.name)
        if role is not None:
            query = query.where(UserRow.role == role)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, or None for an unknown name, a wrong password or an inactive user (the
        same answer for each, and the same argon2 cost: no user enumeration by timing)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    UserRow.id, UserRow.name, UserRow.role, UserRow.password_hash, UserRow.active
                ).where(UserRow.name == name)
            ).first()
        stored = row.password_hash if row is not None else _DUMMY_HASH
        try:
            self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row.active:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(
                    update(UserRow)
                    .where(UserRow.id == row.id)
                    .values(password_hash=self.hasher.hash(password))
                )
        return User(row.id, row.name, row.role)

    # ------------------------------------------------------------------ sessions
    def open_session(self, user: User) -> tuple[str, str]:
        """A new session: ``(cookie value, CSRF token)``; only the cookie's hash is stored."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(SessionRow).values(
                    id_hash=sha256(sid),
                    user_id=user.id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + dt.timedelta(hours=SESSION_HOURS),
                )
            )
        return sid, csrf

    def session(self, sid: str) -> tuple[User, str] | None:
        """The session's user and CSRF token, or None (unknown, expired, user inactive)."""
        if not sid or len(sid) > 128:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    SessionRow.expires_at,
                    SessionRow.csrf,
                    UserRow.id,
                    UserRow.name,
                    UserRow.role,
                    UserRow.active,
                )
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id_hash == sha256(sid))
            ).first()
        if row is None or not row.active:
            return None
        expires = row.expires_at
        if expires.tzinfo is None:  # SQLite hands back naive datetimes
            expires = expires.replace(tzinfo=dt.UTC)
        if expires <= _now():
            return None
        return User(row.id, row.name, row.role), row.csrf

    def close_session(self, sid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(SessionRow.__table__.delete().where(SessionRow.id_hash == sha256(sid)))

    # ------------------------------------------------------------------ API tokens
    def new_token(self, user: User, label: str) -> str:
        """A new API token for ``user``: shown once, stored as its SHA-256."""
        label = label.strip()[:64] or "token"
        token = "surv_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(TokenRow).values(
                    user_id=user.id,
                    label=label,
                    token_hash=sha256(token),
                    created_at=_now(),
                    revoked=False,
                )
            )
        self.audit(user.name, "token_add", None, {}, {"label": label})
        return token

    def tokens(self, user: User) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    TokenRow.id,
                    TokenRow.label,
                    TokenRow.created_at,
                    TokenRow.last_used_at,
                    TokenRow.revoked,
                )
                .where(TokenRow.user_id == user.id)
                .order_by(TokenRow.id)
            ).mappings()
            return [dict(r) for r in rows]

    def revoke_token(self, user: User, token_id: int) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(TokenRow)
                .where(TokenRow.id == token_id, TokenRow.user_id == user.id)
                .values(revoked=True)
            ).rowcount
        if n != 1:
            raise WorkflowError("no such token")
        self.audit(user.name, "token_revoke", None, {"token": token_id}, {"revoked": True})

    def token_user(self, token: str) -> User | None:
        if not token.startswith("surv_") or len(token) > 128:
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                select(
                    TokenRow.id, UserRow.id.label("uid"), UserRow.name, UserRow.role, UserRow.active
                )
                .join(UserRow, UserRow.id == TokenRow.user_id)
                .where(TokenRow.token_hash == sha256(token), TokenRow.revoked.is_(False))
            ).first()
            if row is None or not row.active:
                return None
            conn.execute(update(TokenRow).where(TokenRow.id == row.id).values(last_used_at=_now()))
        return User(row.uid, row.name, row.role)

    # ------------------------------------------------------------------ cases
    def case(self, alert_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(AlertRow.state, AlertRow.assignee, AlertRow.disposition).where(
                    AlertRow.alert_id == alert_id
                )
            ).first()
        return None if row is None else dict(row._mapping)

    def act(
        self,
        user: User,
        alert_id: str,
        action: str,
        *,
        reason: str = "",
        disposition: str | None = None,
        assignee: str | None = None,
    ) -> dict[str, Any]:
        """Apply one workflow action (see the module docstring); returns the case after it."""
        if action not in ACTIONS:
            raise WorkflowError(f"unknown action {action!r}")
        if not user.can("analyst", "supervisor"):
            raise PermissionDenied("only analysts and supervisors work alerts")
        reason = reason.strip()
        if len(reason) > MAX_REASON:
            raise WorkflowError(f"a reason has at most {MAX_REASON} characters")
        before = self.case(alert_id)
        if before is None:
            raise WorkflowError("no such alert")
        state = before["state"]
        after = dict(before)
        if action == "comment":
            if not reason:
                raise WorkflowError("a comment needs text")
            with self.engine.begin() as conn:
                conn.execute(
                    insert(CommentRow).values(
                        alert_id=alert_id, author=user.name, at=_now(), body=reason
                    )
                )
            self.audit(user.name, "comment", alert_id, before, after, reason)
            return after
        if state == "closed" and action != "reopen":
            raise WorkflowError("the alert is closed: a supervisor reopens it first")
        if action == "take":
            if state != "new":
                raise WorkflowError("only a new alert is taken into review")
            after.update(state="in_review", assignee=before["assignee"] or user.name)
        elif action == "assign":
            names = self.user_names()
            if assignee not in names:
                raise WorkflowError("assign to an active user")
            if user.role == "analyst" and assignee != user.name:
                raise PermissionDenied("an analyst assigns alerts to themself only")
            after.update(assignee=assignee)
        elif action == "escalate":
            if state not in ("new", "in_review"):
                raise WorkflowError("only a new or in-review alert is escalated")
            if not reason:
                raise WorkflowError("a reason is required to escalate")
            after.update(state="escalated", assignee=before["assignee"] or user.name)
        elif action == "close":
            if not reason:
                raise WorkflowError("a reason is required to close")
            if disposition not in DISPOSITIONS:
                raise WorkflowError(f"a disposition is required: {', '.join(DISPOSITIONS)}")
            if state == "escalated":
                if user.role != "supervisor":
                    raise PermissionDenied("an escalated alert is closed by a supervisor")
                if user.name in (before["assignee"], self._escalated_by(alert_id)):
                    raise PermissionDenied(
                        "four eyes: a supervisor other than the one who escalated it or "
                        "works it closes an escalated alert"
                    )
            after.update(state="closed", disposition=disposition)
        elif action == "reopen":
            if state != "closed":
                raise WorkflowError("only a closed alert is reopened")
            if user.role != "supervisor":
                raise PermissionDenied("a supervisor reopens an alert")
            if not reason:
                raise WorkflowError("a reason is required to reopen")
            after.update(state="in_review", disposition=None)
        # compare-and-set on the state the checks saw: a concurrent action fails, not merges
        with self.engine.begin() as conn:
            n = conn.execute(
                update(AlertRow)
                .where(AlertRow.alert_id == alert_id, AlertRow.state == state)
                .values(
                    state=after["state"],
                    assignee=after["assignee"],
                    disposition=after["disposition"],
                    updated_at=_now(),
                )
            ).rowcount
        if n != 1:
            raise WorkflowError("the alert changed meanwhile: reload and try again")
        self.audit(user.name, action, alert_id, before, after, reason)
        return after

    def _escalated_by(self, alert_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(AuditRow.actor)
                .where(AuditRow.alert_id == alert_id, AuditRow.action == "escalate")
                .order_by(AuditRow.seq.desc())
                .limit(1)
            ).scalar()

    def comments(self, alert_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CommentRow.author, CommentRow.at, CommentRow.body)
                .where(CommentRow.alert_id == alert_id)
                .order_by(CommentRow.id)
            ).mappings()
            return [dict(r) for r in rows]

    # ------------------------------------------------------------------ audit
    def audit(
        self,
        actor: str,
        action: str,
        alert_id: str | None,
        before: Any,
        after: Any,
        reason: str = "",
    ) -> dict[str, Any]:
        """Append one entry to the chain (retried if another writer extended it first)."""
        b, a = _canonical(before), _canonical(after)
        with self._audit_lock:
            for _ in range(20):
                at = _iso(_now())
                with self.engine.connect() as conn:
                    prev = conn.execute(
                        select(AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
                    ).scalar()
                prev = prev or GENESIS
                digest = entry_hash(prev, at, actor, action, alert_id, b, a, reason)
                row = {
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "alert_id": alert_id,
                    "before": b,
                    "after": a,
                    "reason": reason,
                    "prev_hash": prev,
                    "hash": digest,
                }
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(AuditRow).values(**row))
                    return row
                except IntegrityError:
                    continue
        raise WorkflowError("could not append to the audit trail")

    def trail(self, alert_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries in order (of one alert, or all)."""
        query = select(*AuditRow.__table__.columns).order_by(AuditRow.seq)
        if alert_id is not None:
            query = query.where(AuditRow.alert_id == alert_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def iter_trail(self) -> Iterator[dict[str, Any]]:
        yield from self.trail()

    def verify_chain(self) -> tuple[bool, int, int | None]:
        """``(intact, entries checked, seq of the first broken entry or None)``."""
        prev = GENESIS
        n = 0
        for row in self.iter_trail():
            n += 1
            digest = entry_hash(
                prev,
                row["at"],
                row["actor"],
                row["action"],
                row["alert_id"],
                row["before"],
                row["after"],
                row["reason"],
            )
            if row["prev_hash"] != prev or row["hash"] != digest:
                return False, n, int(row["seq"])
            prev = row["hash"]
        return True, n, None

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(UserRow)).scalar_one())


# Verified against when a name is unknown, so a wrong name costs what a wrong password does.
_DUMMY_HASH = PasswordHasher().hash(secrets.token_hex(16))
