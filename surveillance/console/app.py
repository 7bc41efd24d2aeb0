"""The compliance console: a FastAPI application over the alert store, pages rendered on the
server (Jinja2), live inbox rows by htmx polling (htmx is served from its Python package).

``create_app(store_url)`` builds it; ``surveillance console`` runs it with uvicorn. Every route
but ``/login`` needs a session cookie or an API token (``Authorization: Bearer surv_...``);
every state change needs the session's CSRF token (API tokens carry no ambient authority, so
they need none). See docs/console.md for roles, workflow and the security choices.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from alerts.schema import SEVERITIES
from alerts.store import AlertStore
from alerts.workflow import (
    DISPOSITIONS,
    STATES,
    PermissionDenied,
    User,
    Workflow,
    WorkflowError,
)
from surveillance.console import export
from surveillance.console.queries import (
    PAGE_SIZES,
    FilterError,
    InboxFilter,
    alert_row,
    decision_calibration,
    inbox,
    instruments,
)
from surveillance.console.security import (
    LOGIN_CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    LoginThrottle,
    same_token,
)
from surveillance.console.views import alert_view
from surveillance.detection.orders import TYPOLOGIES
from surveillance.report import CSS as REPORT_CSS

HERE = Path(__file__).parent
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
WORK_ACTIONS = ("take", "assign", "escalate", "close", "reopen", "comment")
MAX_FORM_FIELD = 4000
MAX_EXPORT = 200


class AuthRequired(Exception):
    """No valid session or token (401, or a redirect to the login page for a browser)."""


class Forbidden(Exception):
    """Authenticated, but the role or the CSRF token does not allow this (403)."""


@dataclass(frozen=True, slots=True)
class Auth:
    user: User
    csrf: str | None  # None for an API token
    sid: str | None


def htmx_script() -> bytes | None:
    """htmx from its Python package (installed with the console's dependencies)."""
    try:
        path = resources.files("js_lib_htmx").joinpath("static/htmx/htmx.min.js")
        return path.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def create_app(
    store_url: str,
    *,
    secure_cookies: bool = False,
    poll_seconds: float = 5.0,
    throttle: LoginThrottle | None = None,
) -> FastAPI:
    """The console over the store at ``store_url`` (migrated to the current schema first)."""
    store = AlertStore(store_url)
    store.create_schema()
    wf = Workflow(store.engine)
    throttle = throttle or LoginThrottle()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        SEVERITIES=SEVERITIES,
        STATES=STATES,
        TYPOLOGIES=TYPOLOGIES,
        DISPOSITIONS=DISPOSITIONS,
        PAGE_SIZES=PAGE_SIZES,
        poll_seconds=poll_seconds,
    )
    templates.env.filters["label"] = lambda s: "–" if s is None else str(s).replace("_", " ")
    templates.env.filters["num"] = _num
    htmx = htmx_script()
    console_js = (HERE / "static" / "console.js").read_bytes()
    console_css = (HERE / "static" / "console.css").read_text() + REPORT_CSS

    app = FastAPI(
        title="Surveillance console",
        docs_url=None,  # no unauthenticated documentation routes
        redoc_url=None,
        openapi_url=None,
    )
    app.state.store = store
    app.state.workflow = wf
    app.state.throttle = throttle

    # ------------------------------------------------------------------ plumbing
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    def wants_html(request: Request) -> bool:
        return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
            "accept", ""
        )

    @app.exception_handler(AuthRequired)
    async def _auth_required(request: Request, exc: AuthRequired) -> Response:
        if wants_html(request) and request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return JSONResponse({"detail": "authentication required"}, status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return error(request, 403, str(exc) or "forbidden")

    @app.exception_handler(FilterError)
    async def _bad_filter(request: Request, exc: FilterError) -> Response:
        return error(request, 400, f"bad filter: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error(request, exc.status_code, str(exc.detail))

    def error(request: Request, status: int, message: str) -> Response:
        if wants_html(request):
            return templates.TemplateResponse(
                request, "error.html", {"status": status, "message": message}, status_code=status
            )
        return JSONResponse({"detail": message}, status_code=status)

    def authenticate(request: Request) -> Auth:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = wf.token_user(header[7:].strip())
            if user is None:
                raise AuthRequired()
            return Auth(user, None, None)
        sid = request.cookies.get(SESSION_COOKIE, "")
        found = wf.session(sid) if sid else None
        if found is None:
            raise AuthRequired()
        return Auth(found[0], found[1], sid)

    def role(*roles: str) -> Callable[..., Auth]:
        def check(auth: Auth = Depends(authenticate)) -> Auth:
            if roles and auth.user.role not in roles:
                raise Forbidden(f"this needs the role {' or '.join(roles)}")
            return auth

        return check

    async def form_with_csrf(request: Request, auth: Auth) -> dict[str, str]:
        """The posted form, after the CSRF and origin checks every state change passes."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            raise Forbidden("cross-origin request refused")
        try:
            form = await request.form()
        except Exception:
            raise Forbidden("unreadable form") from None
        fields = {k: str(v)[:MAX_FORM_FIELD] for k, v in form.items() if isinstance(v, str)}
        if auth.csrf is not None:
            given = fields.get("csrf") or request.headers.get("x-csrf-token")
            if not same_token(given, auth.csrf):
                raise Forbidden("missing or wrong CSRF token")
        return fields

    def page(request: Request, name: str, auth: Auth, **context: Any) -> HTMLResponse:
        context.update(user=auth.user, csrf=auth.csrf or "", has_htmx=htmx is not None)
        return templates.TemplateResponse(request, name, context)

    # ------------------------------------------------------------------ login
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/", failed: int = 0) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or _token()
        response = templates.TemplateResponse(
            request,
            "login.html",
            {"next": _local(next), "login_csrf": token, "failed": failed, "user": None},
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            path="/login",
        )
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name = str(form.get("username", ""))[:64]
        password = str(form.get("password", ""))[:1024]
        target = _local(str(form.get("next", "/")))
        if not same_token(str(form.get("login_csrf", "")), request.cookies.get(LOGIN_CSRF_COOKIE)):
            return error(request, 403, "the login form expired: reload the page")
        client = request.client.host if request.client else "?"
        keys = (f"user:{name}", f"addr:{client}")
        wait = throttle.retry_after(*keys)
        if wait:
            wf.audit(name or "?", "login_throttled", None, {}, {"address": client})
            return error(request, 429, f"too many failed logins: try again in {wait} s")
        user = wf.authenticate(name, password)
        if user is None:
            throttle.failed(*keys)
            wf.audit(name or "?", "login_failed", None, {}, {"address": client})
            return RedirectResponse(f"/login?failed=1&next={quote(target)}", status_code=303)
        throttle.succeeded(keys[0])
        sid, _ = wf.open_session(user)
        wf.audit(user.name, "login", None, {}, {"address": client})
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            max_age=8 * 3600,
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @app.post("/logout")
    async def logout(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        await form_with_csrf(request, auth)
        if auth.sid:
            wf.close_session(auth.sid)
        wf.audit(auth.user.name, "logout", None, {}, {})
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ assets
    @app.get("/static/htmx.min.js")
    def static_htmx(auth: Auth = Depends(authenticate)) -> Response:
        if htmx is None:
            return PlainTextResponse("htmx is not installed", status_code=404)
        return Response(htmx, media_type="text/javascript")

    @app.get("/static/console.js")
    def static_js(auth: Auth = Depends(authenticate)) -> Response:
        return Response(console_js, media_type="text/javascript")

    @app.get("/static/console.css")
    def static_css(auth: Auth = Depends(authenticate)) -> Response:
        return Response(console_css, media_type="text/css")

    # ------------------------------------------------------------------ inbox
    @app.get("/")
    def home(auth: Auth = Depends(authenticate)) -> Response:
        return RedirectResponse("/alerts", status_code=303)

    def inbox_context(request: Request) -> dict[str, Any]:
        f = InboxFilter.parse(dict(request.query_params))
        rows, total = inbox(store.engine, f)
        seen = request.query_params.get("seen", "")
        seen = seen if len(seen) <= 40 else ""
        now = dt.datetime.now(dt.UTC).isoformat()
        for r in rows:
            stored = r["stored_at"]
            stored = stored if stored.tzinfo else stored.replace(tzinfo=dt.UTC)
            r["fresh"] = bool(seen) and stored.isoformat() > seen
        pages = max(1, math.ceil(total / f.per_page))
        return {
            "f": f,
            "rows": rows,
            "total": total,
            "pages": pages,
            "seen": seen or now,
            "instruments": instruments(store.engine),
            "assignees": wf.user_names(),
        }

    @app.get("/alerts", response_class=HTMLResponse)
    def inbox_page(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        return page(request, "inbox.html", auth, **inbox_context(request))

    @app.get("/alerts/rows", response_class=HTMLResponse)
    def inbox_rows(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        """The inbox table alone: what the page polls to show new alerts without a reload."""
        return page(request, "_rows.html", auth, **inbox_context(request))

    # ------------------------------------------------------------------ one alert
    def load(alert_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        row = alert_row(store.engine, alert_id)
        if row is None:
            raise StarletteHTTPException(404, "no such alert")
        return json.loads(row["message"]), row

    def check_id(alert_id: str) -> str:
        import re

        if not re.fullmatch(UUID_PATTERN, alert_id):
            raise StarletteHTTPException(404, "no such alert")
        return alert_id

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    def alert_page(request: Request, alert_id: str, auth: Auth = Depends(authenticate)) -> Response:
        alert, row = load(check_id(alert_id))
        return page(
            request,
            "alert.html",
            auth,
            a=alert,
            row=row,
            view=alert_view(alert),
            calibration=decision_calibration(store.engine, alert_id),
            comments=wf.comments(alert_id),
            trail=wf.trail(alert_id),
            assignees=wf.user_names(),
            message=request.query_params.get("done", "")[:40],
        )

    @app.get("/alerts/{alert_id}/evidence.csv")
    def alert_csv(alert_id: str, auth: Auth = Depends(authenticate)) -> Response:
        alert, _ = load(check_id(alert_id))
        wf.audit(auth.user.name, "export", alert_id, {}, {"file": "evidence.csv"})
        return Response(
            export.evidence_csv(alert),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="evidence-{alert_id}.csv"'},
        )

    @app.get("/alerts/{alert_id}/report.html")
    def alert_report(alert_id: str, auth: Auth = Depends(authenticate)) -> Response:
        alert, _ = load(check_id(alert_id))
        wf.audit(auth.user.name, "export", alert_id, {}, {"file": "report.html"})
        # a download: its inline script and styles never run under the console's origin
        return Response(
            export.report_html(alert),
            media_type="text/html",
            headers={"Content-Disposition": f'attachment; filename="report-{alert_id}.html"'},
        )

    def case_of(alert: dict[str, Any], row: dict[str, Any], who: str) -> dict[str, Any]:
        aid = alert["alert_id"]
        case = {k: row[k] for k in ("state", "assignee", "disposition", "updated_at")}
        return export.case_file(
            alert, case, wf.comments(aid), wf.trail(aid), wf.verify_chain(), who
        )

    @app.get("/alerts/{alert_id}/case.json")
    def alert_case(alert_id: str, auth: Auth = Depends(authenticate)) -> Response:
        alert, row = load(check_id(alert_id))
        wf.audit(auth.user.name, "export", alert_id, {}, {"file": "case.json"})
        body = json.dumps(case_of(alert, row, auth.user.name), indent=2, default=str)
        return Response(body, media_type="application/json")

    @app.get("/export")
    def export_bundle(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        """A zip of the selected alerts' case files (``?id=...&id=...``)."""
        ids = request.query_params.getlist("id")
        if not ids or len(ids) > MAX_EXPORT:
            raise StarletteHTTPException(400, f"select 1 to {MAX_EXPORT} alerts")
        cases = []
        for aid in dict.fromkeys(ids):
            alert, row = load(check_id(aid))
            cases.append((alert, case_of(alert, row, auth.user.name)))
        wf.audit(auth.user.name, "export", None, {}, {"alerts": list(dict.fromkeys(ids))})
        name = f"cases-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.zip"
        return Response(
            export.bundle(cases),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def work_route(action: str) -> None:
        async def handler(
            request: Request,
            alert_id: str,
            auth: Auth = Depends(role("analyst", "supervisor")),
        ) -> Response:
            form = await form_with_csrf(request, auth)
            check_id(alert_id)
            try:
                wf.act(
                    auth.user,
                    alert_id,
                    action,
                    reason=form.get("reason", ""),
                    disposition=form.get("disposition") or None,
                    assignee=form.get("assignee") or None,
                )
            except PermissionDenied as exc:
                raise Forbidden(str(exc)) from None
            except WorkflowError as exc:
                status = 404 if str(exc) == "no such alert" else 409
                return error(request, status, str(exc))
            return RedirectResponse(f"/alerts/{alert_id}?done={action}", status_code=303)

        handler.__name__ = f"alert_{action}"
        app.post(f"/alerts/{{alert_id}}/{action}")(handler)

    for action in WORK_ACTIONS:
        work_route(action)

    # ------------------------------------------------------------------ audit trail
    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, auth: Auth = Depends(role("supervisor", "admin"))) -> Response:
        chain = wf.verify_chain()
        return page(request, "audit.html", auth, trail=wf.trail(), chain=chain)

    @app.get("/audit/export")
    def audit_export(auth: Auth = Depends(role("supervisor", "admin"))) -> Response:
        """The whole trail as JSON lines, each with its hash: verifiable offline."""
        wf.audit(auth.user.name, "audit_export", None, {}, {})
        lines = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in wf.trail())
        return Response(
            lines,
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="audit-trail.jsonl"'},
        )

    # ------------------------------------------------------------------ API (JSON)
    @app.get("/api/alerts")
    def api_alerts(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        f = InboxFilter.parse(dict(request.query_params))
        rows, total = inbox(store.engine, f)
        return JSONResponse(
            {"total": total, "page": f.page, "alerts": json.loads(json.dumps(rows, default=str))}
        )

    @app.get("/api/alerts/{alert_id}")
    def api_alert(alert_id: str, auth: Auth = Depends(authenticate)) -> Response:
        alert, row = load(check_id(alert_id))
        case = {k: row[k] for k in ("state", "assignee", "disposition")}
        return JSONResponse({"alert": alert, "case": case})

    # ------------------------------------------------------------------ tokens and users
    @app.get("/tokens", response_class=HTMLResponse)
    def tokens_page(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        return page(request, "tokens.html", auth, tokens=wf.tokens(auth.user), new=None)

    @app.post("/tokens", response_class=HTMLResponse)
    async def tokens_add(request: Request, auth: Auth = Depends(authenticate)) -> Response:
        form = await form_with_csrf(request, auth)
        token = wf.new_token(auth.user, form.get("label", ""))
        return page(request, "tokens.html", auth, tokens=wf.tokens(auth.user), new=token)

    @app.post("/tokens/{token_id}/revoke")
    async def tokens_revoke(
        request: Request, token_id: int, auth: Auth = Depends(authenticate)
    ) -> Response:
        await form_with_csrf(request, auth)
        try:
            wf.revoke_token(auth.user, token_id)
        except WorkflowError as exc:
            return error(request, 404, str(exc))
        return RedirectResponse("/tokens", status_code=303)

    @app.get("/admin/users", response_class=HTMLResponse)
    def users_page(request: Request, auth: Auth = Depends(role("admin"))) -> Response:
        return page(request, "users.html", auth, users=wf.users(), problem=None)

    @app.post("/admin/users")
    async def users_add(request: Request, auth: Auth = Depends(role("admin"))) -> Response:
        form = await form_with_csrf(request, auth)
        try:
            wf.add_user(
                form.get("name", ""),
                form.get("role", ""),
                form.get("password", ""),
                actor=auth.user.name,
            )
        except WorkflowError as exc:
            return page(request, "users.html", auth, users=wf.users(), problem=str(exc))
        return RedirectResponse("/admin/users", status_code=303)

    @app.post("/admin/users/{name}/active")
    async def users_active(
        request: Request, name: str, auth: Auth = Depends(role("admin"))
    ) -> Response:
        form = await form_with_csrf(request, auth)
        if name == auth.user.name:
            return error(request, 409, "an admin does not deactivate themself")
        try:
            wf.set_active(name[:64], form.get("active") == "1", actor=auth.user.name)
        except WorkflowError as exc:
            return error(request, 404, str(exc))
        return RedirectResponse("/admin/users", status_code=303)

    return app


def _token() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _local(target: str) -> str:
    """Only a path on this site is a place to go after login (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _num(x: Any, digits: int = 3) -> str:
    if x is None or isinstance(x, bool):
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
