"""The console's HTTP surface: every route refuses anonymous requests, role-restricted routes
refuse the wrong role, every state change refuses a missing or wrong CSRF token, hostile filter
input never reaches a 500, and the workflow (four eyes, reasons, audit chain) holds."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from surveillance.console.app import create_app
from surveillance.console.security import LoginThrottle
from tests.console.conftest import PASSWORD, USERS, fill_store, login

# Routes open to some roles only (every other route: any logged-in user).
ROLE_ONLY = {
    "/audit": ("supervisor", "admin"),
    "/audit/export": ("supervisor", "admin"),
    "/admin/users": ("admin",),
    "/admin/users/{name}/active": ("admin",),
    **{
        f"/alerts/{{alert_id}}/{a}": ("analyst", "supervisor")
        for a in ("take", "assign", "escalate", "close", "reopen", "comment")
    },
}
PUBLIC = {("GET", "/login"), ("POST", "/login")}
ANY_ROLE_USER = {"analyst": "ann", "supervisor": "sue", "admin": "ada"}


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    path = tmp_path_factory.mktemp("console") / "alerts.sqlite"
    url = f"sqlite:///{path}"
    ids = fill_store(url)
    app = create_app(url, poll_seconds=60)
    clients: dict[str, TestClient] = {}
    csrf: dict[str, str] = {}
    for name in USERS:
        clients[name] = TestClient(app, base_url="http://testserver")
        csrf[name] = login(clients[name], name)
    yield app, ids, clients, csrf
    for c in clients.values():
        c.close()
    app.state.store.close()


def routes(app) -> list[tuple[str, str]]:
    out = []
    for r in app.routes:
        if isinstance(r, APIRoute):
            out += [(m, r.path) for m in sorted(r.methods)]
    return out


def concrete(path: str, alert_id: str) -> str:
    return path.replace("{alert_id}", alert_id).replace("{token_id}", "1").replace("{name}", "bob")


def test_every_route_but_login_refuses_a_request_without_credentials(console) -> None:
    app, ids, _, _ = console
    anonymous = TestClient(app)
    walked = routes(app)
    assert len(walked) >= 25
    for method, path in walked:
        if (method, path) in PUBLIC:
            continue
        r = anonymous.request(method, concrete(path, ids[0]), follow_redirects=False)
        assert r.status_code == 401, (method, path, r.status_code)
        # a browser asking for a page is sent to the login form instead
        r = anonymous.request(
            method, concrete(path, ids[0]), headers={"accept": "text/html"}, follow_redirects=False
        )
        assert r.status_code in (303, 401), (method, path)
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login?next=")
    # a forged session cookie or token is no better than none
    forged = TestClient(app, cookies={"surv_session": "x" * 43})
    assert forged.get("/alerts").status_code == 401
    assert (
        anonymous.get("/api/alerts", headers={"authorization": "Bearer surv_nope"}).status_code
        == 401
    )


def test_role_restricted_routes_refuse_the_wrong_role(console) -> None:
    app, ids, clients, csrf = console
    walked = {path for _, path in routes(app)}
    assert set(ROLE_ONLY) <= walked
    for method, path in routes(app):
        allowed = ROLE_ONLY.get(path)
        if allowed is None:
            continue
        for role, name in ANY_ROLE_USER.items():
            if role in allowed:
                continue
            data = {"csrf": csrf[name]} if method == "POST" else None
            r = clients[name].request(
                method, concrete(path, ids[0]), data=data, follow_redirects=False
            )
            assert r.status_code == 403, (method, path, role, r.status_code)


def test_every_state_change_refuses_a_missing_or_wrong_csrf_token(console) -> None:
    app, ids, clients, csrf = console
    posts = [p for m, p in routes(app) if m == "POST" and ("POST", p) not in PUBLIC]
    assert len(posts) >= 10
    for path in posts:
        allowed = ROLE_ONLY.get(path, ("analyst", "supervisor", "admin"))
        name = next(n for r, n in ANY_ROLE_USER.items() if r in allowed)
        client = clients[name]
        for data in (
            {},
            {"csrf": "wrong" + csrf[name]},
            {"csrf": csrf[ANY_ROLE_USER["supervisor"] if name != "sue" else "ann"]},
        ):
            r = client.post(concrete(path, ids[0]), data=data, follow_redirects=False)
            assert r.status_code == 403, (path, data, r.status_code)
    # a cross-site form post carries the cookie but not the token, and its Origin gives it away
    r = clients["ann"].post(
        f"/alerts/{ids[0]}/comment",
        data={"csrf": csrf["ann"], "reason": "x"},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403
    # the login form has its own token
    fresh = TestClient(app)
    r = fresh.post("/login", data={"username": "ann", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403


HOSTILE = [
    "'",
    '"',
    "' OR '1'='1",
    "1; DROP TABLE alerts;--",
    "%' UNION SELECT password_hash FROM console_users--",
    "<script>alert(1)</script>",
    "\\x00",
    "9" * 400,
    "A" * 5000,
    "-1",
    "1e309",
    "2012-13-45",
    "NaN",
]
FILTERS = (
    "instrument",
    "from",
    "to",
    "severity",
    "state",
    "assignee",
    "typology",
    "sort",
    "order",
    "page",
    "per_page",
)


@pytest.mark.parametrize("endpoint", ["/alerts", "/alerts/rows", "/api/alerts"])
def test_hostile_filters_answer_4xx_or_empty_never_500(console, endpoint) -> None:
    _, _, clients, _ = console
    client = clients["ann"]
    # every value on the JSON API; the pages share its parser, so a sample there
    values = HOSTILE if endpoint == "/api/alerts" else HOSTILE[2:6]
    for name in FILTERS:
        for value in values:
            r = client.get(endpoint, params={name: value})
            assert r.status_code in (200, 400, 422), (name, value, r.status_code)
            body = r.text
            assert "Traceback" not in body and "sqlalchemy" not in body.lower()
            assert "$argon2" not in body and "<script>alert(1)" not in body
            if r.status_code == 200 and endpoint == "/api/alerts":
                assert r.json()["alerts"] == [], (name, value)
    r = client.get("/alerts/not-a-uuid' OR 1=1")
    assert r.status_code == 404


def test_inbox_filters_sort_and_page(console) -> None:
    _, ids, clients, _ = console
    c = clients["ann"]
    everything = c.get("/api/alerts").json()
    assert everything["total"] == len(ids)
    amzn = c.get("/api/alerts", params={"instrument": "AMZN"}).json()["alerts"]
    assert amzn and all(a["instrument"] == "AMZN" for a in amzn)
    layered = c.get("/api/alerts", params={"typology": "layering"}).json()["alerts"]
    assert [a["typology"] for a in layered] == ["layering"]
    by_score = c.get("/api/alerts", params={"sort": "score"}).json()["alerts"]
    assert [a["score"] for a in by_score] == sorted((a["score"] for a in by_score), reverse=True)
    assert c.get("/api/alerts", params={"from": "2013-01-01"}).json()["total"] == 0
    assert c.get("/api/alerts", params={"to": "2012-06-20"}).json()["total"] == 0
    assert c.get("/api/alerts", params={"from": "2012-06-21", "to": "2012-06-21"}).json()[
        "total"
    ] == len(ids)
    page = c.get("/alerts", params={"per_page": 25}, headers={"accept": "text/html"})
    assert page.status_code == 200 and 'hx-get="/alerts/rows?' in page.text
    assert c.get("/static/htmx.min.js").status_code == 200  # from its package


def test_workflow_four_eyes_reasons_audit_chain_and_export(console) -> None:
    app, ids, clients, csrf = console
    aid = ids[1]
    ann, sue, sam = clients["ann"], clients["sue"], clients["sam"]

    def act(client, who, action, **form):
        return client.post(
            f"/alerts/{aid}/{action}", data={"csrf": csrf[who], **form}, follow_redirects=False
        )

    assert act(ann, "ann", "take").status_code == 303
    assert act(ann, "ann", "escalate").status_code == 409  # a reason is required
    assert (
        act(ann, "ann", "escalate", reason="large orders withdrawn at the touch").status_code == 303
    )
    # an analyst cannot close an escalated alert; a supervisor who escalated it could not either
    assert act(ann, "ann", "close", reason="x", disposition="false_positive").status_code == 403
    assert act(sue, "sue", "close", disposition="false_positive").status_code == 409  # no reason
    assert act(sue, "sue", "close", reason="ok", disposition="made_up").status_code == 409
    assert act(sue, "sue", "assign", assignee="sue").status_code == 303
    r = act(sue, "sue", "close", reason="ok", disposition="false_positive")
    assert r.status_code == 403  # four eyes: sue now works it
    r = act(
        sam,
        "sam",
        "close",
        reason="layered orders confirmed",
        disposition="suspicious_report_to_regulator",
    )
    assert r.status_code == 303
    case = ann.get(f"/api/alerts/{aid}").json()["case"]
    assert case == {
        "state": "closed",
        "assignee": "sue",
        "disposition": "suspicious_report_to_regulator",
    }
    page = ann.get(f"/alerts/{aid}", headers={"accept": "text/html"}).text
    assert "large orders withdrawn at the touch" in page and "layered orders confirmed" in page
    trail = app.state.workflow.trail(aid)
    assert [e["action"] for e in trail] == ["take", "escalate", "assign", "close"]
    assert trail[1]["actor"] == "ann" and trail[3]["actor"] == "sam"
    assert json.loads(trail[3]["before"])["state"] == "escalated"
    assert json.loads(trail[3]["after"])["state"] == "closed"
    assert app.state.workflow.verify_chain()[0]
    # supervisors and admins see and export the whole trail
    assert clients["ada"].get("/audit").status_code == 200
    lines = sue.get("/audit/export").text.splitlines()
    assert all(json.loads(x)["hash"] for x in lines)
    # the bundle: case JSON with evidence and trail, the HTML report, the evidence CSV
    r = ann.get("/export", params=[("id", aid), ("id", ids[0])])
    assert r.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(z.namelist())
    assert {
        f"{aid}/case.json",
        f"{aid}/report.html",
        f"{aid}/evidence.csv",
        "MANIFEST.json",
    } <= names
    case_file = json.loads(z.read(f"{aid}/case.json"))
    assert case_file["alert"]["evidence"] and len(case_file["audit_trail"]) == 4
    assert case_file["audit_chain"]["intact"]
    assert z.read(f"{aid}/evidence.csv").decode().startswith("fact,kind,order_id")
    assert b"<svg" in z.read(f"{aid}/report.html")


def test_audit_trail_is_append_only_and_tamper_evident(console) -> None:
    app, _, _, _ = console
    wf = app.state.workflow
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError), wf.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
    with pytest.raises(DatabaseError), wf.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
    assert wf.verify_chain()[0]
    # with the guard dropped (someone with the database file), the chain shows the edit
    with wf.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET reason = 'edited' WHERE seq = 2"))
    intact, _, broken = wf.verify_chain()
    assert not intact and broken == 2


def test_login_throttling_tokens_and_sessions(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    ids = fill_store(url)
    app = create_app(url, throttle=LoginThrottle(max_failures=3, window_s=60))
    c = TestClient(app)
    for _ in range(3):
        token = re.search(r'name="login_csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"username": "ann", "password": "wrong", "login_csrf": token},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and "failed=1" in r.headers["location"]
    token = re.search(r'name="login_csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": "ann", "password": PASSWORD, "login_csrf": token})
    assert r.status_code == 429  # even the right password waits out the lockout
    app.state.store.close()
    # tokens and sessions (a console without the lockout above: it is per address too)
    app = create_app(url)
    s = TestClient(app)
    csrf = login(s, "sue")
    set_cookie = s.post("/tokens", data={"csrf": csrf, "label": "siem"})
    new_token = re.search(r'id="new-token">([^<]+)<', set_cookie.text).group(1)
    api = TestClient(app, headers={"authorization": f"Bearer {new_token}"})
    assert api.get("/api/alerts").json()["total"] == len(ids)
    # an API token needs no CSRF token (no cookie: nothing ambient to ride on)
    assert (
        api.post(f"/alerts/{ids[0]}/comment", data={"reason": "from the SIEM"}).status_code == 200
    )
    from sqlalchemy import select

    from alerts.workflow import TokenRow

    with app.state.store.engine.connect() as conn:
        stored = list(conn.execute(select(TokenRow.token_hash)).scalars())
    assert new_token not in stored and len(stored[0]) == 64
    tid = app.state.workflow.tokens(app.state.workflow.authenticate("sue", PASSWORD))[0]["id"]
    assert (
        s.post(f"/tokens/{tid}/revoke", data={"csrf": csrf}, follow_redirects=False).status_code
        == 303
    )
    assert api.get("/api/alerts").status_code == 401
    s.post("/logout", data={"csrf": csrf})
    assert s.get("/api/alerts").status_code == 401
    app.state.store.close()


def test_login_sets_httponly_samesite_cookie(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    fill_store(url)
    app = create_app(url)
    c = TestClient(app)
    token = re.search(r'name="login_csrf" value="([^"]+)"', c.get("/login").text).group(1)
    r = c.post("/login", data={"username": "ann", "password": PASSWORD, "login_csrf": token,
                               "next": "https://evil.example/"}, follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == "/"  # no open redirect
    header = r.headers["set-cookie"].lower()
    assert "surv_session=" in header and "httponly" in header and "samesite=strict" in header
    assert "content-security-policy" in r.headers
    app.state.store.close()


def _decide(app, alert_id: str, calibration: dict) -> None:
    """Store a decision row for the window behind ``alert_id`` with this ``calibration``."""
    from alerts.store import AlertStore
    from surveillance.detection.pipeline import WindowDecision, WindowScore

    store = AlertStore(app.state.store.engine.url.render_as_string(hide_password=False))
    alert = store.get(alert_id=alert_id)
    verdict = WindowScore(
        score=alert["score"],
        p_value=alert["p_value"],
        alert=True,
        threshold=alert["threshold"],
        detail={"calibration": calibration},
    )
    window = alert["window"]
    decision = WindowDecision(
        alert["instrument"],
        window["start_ns"],
        window["end_ns"],
        alert["model_version"],
        alert["n_events"],
        "event",
        verdict,
    )
    assert store.put_decision(decision=decision)
    store.close()


def test_the_alert_page_says_how_its_window_was_calibrated(console) -> None:
    """An alert on an instrument the calibration never saw shows its decision's calibration
    status and the windows behind its threshold; one without a decision row says so."""
    app, ids, clients, _ = console
    _decide(
        app,
        ids[0],
        {
            "status": "adapting",
            "own_windows": 7,
            "threshold_windows": {"reference": 20, "own": 7},
        },
    )
    page = clients["ann"].get(f"/alerts/{ids[0]}").text
    cell = re.search(r'<dd id="calibration">(.*?)</dd>', page, re.S).group(1)
    assert "adapting" in cell and "7 own windows" in cell and "20 calibration" in cell
    other = clients["ann"].get(f"/alerts/{ids[1]}").text
    assert "not recorded" in re.search(r'<dd id="calibration">(.*?)</dd>', other, re.S).group(1)
    assert 'id="scenarios"' not in page and 'id="scenarios"' not in other


def test_the_alert_page_shows_which_score_cleared_its_threshold(console) -> None:
    """A window alerting through a scenario (the sweep facts' score clears its own threshold
    while the omnibus score does not) shows both scores against their thresholds."""
    app, ids, clients, _ = console
    scenarios = {
        "omnibus": {"score": 5.25, "threshold": 8.1},
        "aggressive_trading": {"score": 6.4, "threshold": 4.2},
    }
    _decide(app, ids[2], {"status": "calibrated", "norms": "GOOG", "scenarios": scenarios})
    page = clients["ann"].get(f"/alerts/{ids[2]}").text
    cell = re.search(r'<dd id="scenarios">(.*?)</dd>', page, re.S).group(1)
    omnibus, aggressive = cell.split("<br>")
    assert "omnibus" in omnibus and "5.25" in omnibus and "8.10" in omnibus
    assert "clears" not in omnibus
    assert "aggressive trading" in aggressive and "6.40" in aggressive and "clears it" in aggressive


def test_the_alert_page_says_whether_the_rollouts_looked_like_the_market(tmp_path) -> None:
    """An alert whose simulation was off (a flooded order model) says so, with the figures;
    one that never recorded the check says that."""
    from alerts.schema import validate_alert, window_id
    from alerts.store import AlertStore
    from tests.console.conftest import v2_alerts

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    ids = fill_store(url)
    alert = v2_alerts()[0]
    w = alert["window"]
    alert["instrument"] = "FLOOD"
    alert["alert_id"] = window_id("FLOOD", w["start_ns"], w["end_ns"], alert["model_version"])
    alert["simulation"] = {
        "faithful": False,
        "off": ["orders"],
        "orders_per_rollout": 64445.0,
        "real_orders": 12660,
        "order_ratio": 5.09,
        "spread_ticks": {"real": 37.0, "rollouts": 40.0},
        "spread_ratio": 1.081,
    }
    validate_alert(alert)
    store = AlertStore(url)
    store.put(alert=alert)
    store.close()
    app = create_app(url)
    client = TestClient(app)
    login(client, "ann")
    page = client.get(f"/alerts/{alert['alert_id']}").text
    cell = re.search(r'<dd id="simulation">(.*?)</dd>', page, re.S).group(1)
    assert "off the real window" in cell and "64445 orders per rollout against 12660" in cell
    assert "either way: orders." in cell and "40.0 against 37.0" in cell
    other = client.get(f"/alerts/{ids[0]}").text
    assert "not recorded" in re.search(r'<dd id="simulation">(.*?)</dd>', other, re.S).group(1)
    app.state.store.close()
