"""Fixtures of the console tests: a store with real v2 alerts (AMZN/GOOG windows with injected
manipulation, scored by the empirical sampler: ``data/alerts-v2.json``), a v1 alert, and one
user per role."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PASSWORD = "correct horse battery staple"
USERS = {
    "ann": "analyst",
    "bob": "analyst",
    "sue": "supervisor",
    "sam": "supervisor",
    "ada": "admin",
}


@pytest.fixture(autouse=True, scope="session")
def fast_argon2():
    """Cheap argon2 parameters for tests (the defaults cost ~50 ms a hash, by design)."""
    from argon2 import PasswordHasher

    import alerts.workflow as workflow

    saved = workflow.password_hasher
    workflow.password_hasher = lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    workflow.password_hasher = saved


def v2_alerts() -> list[dict]:
    return json.loads((DATA / "alerts-v2.json").read_text())


def fill_store(url: str) -> list[str]:
    """Store the fixture alerts and users at ``url``; returns the alert ids."""
    from alerts.store import AlertStore
    from alerts.workflow import Workflow

    store = AlertStore(url)
    store.create_schema()
    wf = Workflow(store.engine)
    ids = []
    for alert in v2_alerts():
        store.put(alert=alert)
        ids.append(alert["alert_id"])
    for name, role in USERS.items():
        wf.add_user(name, role, PASSWORD)
    store.close()
    return ids


def login(client, name: str, password: str = PASSWORD) -> str:
    """Log ``client`` in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)
    r = client.post(
        "/login",
        data={"username": name, "password": password, "login_csrf": token, "next": "/alerts"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/alerts", r.text
    home = client.get("/alerts", headers={"accept": "text/html"})
    return re.search(r'data-csrf="([^"]+)"', home.text).group(1)
