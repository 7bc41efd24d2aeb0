"""The console in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright. An analyst logs in, filters the inbox, opens an alert, sees its order-level
evidence and escalates it with a reason; a supervisor closes it; both show in the audit trail.

Skipped, saying why, only where no chromium is installed (CI installs it: .ci/run). With
``SURV_SCREENS_DIR`` set, the inbox and the alert page are saved there as PNGs.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.console.conftest import PASSWORD, fill_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from streams.broker import free_port
    from surveillance.console.app import create_app

    path = tmp_path_factory.mktemp("browser") / "alerts.sqlite"
    url = f"sqlite:///{path}"
    ids = fill_store(url)
    app = create_app(url, poll_seconds=2)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline:
            pytest.fail("the console did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", ids, app
    srv.should_exit = True
    thread.join(timeout=10)
    app.state.store.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def log_in(page, base: str, name: str) -> None:
    page.goto(f"{base}/alerts")
    assert "/login" in page.url  # every page but the login form needs a session
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/alerts")


def test_analyst_escalates_supervisor_closes_both_in_the_audit_trail(server, browser) -> None:
    base, ids, _ = server
    screens = os.environ.get("SURV_SCREENS_DIR")
    analyst = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = analyst.new_page()
    log_in(page, base, "ann")
    assert page.locator("table.inbox tbody tr").count() == len(ids)
    # filter the inbox: layering alerts only
    page.select_option("select[name=typology]", "layering")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**typology=layering**")
    rows = page.locator("table.inbox tbody tr")
    assert rows.count() == 1
    if screens:
        page.select_option("select[name=typology]", "")
        page.click("#filters button[type=submit]")
        page.wait_for_load_state()
        page.screenshot(path=str(Path(screens) / "inbox.png"), full_page=True)
        page.select_option("select[name=typology]", "layering")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**typology=layering**")
    rows.first.locator("a").click()
    page.wait_for_selector("#evidence")
    assert "layering" in page.inner_text("#typology")
    evidence = page.locator("#evidence tbody tr")
    assert evidence.count() > 3
    assert page.locator("svg.timeline circle").count() > 3
    assert "cancelled" in page.inner_text("#evidence")
    # the evidence table sorts in the page
    page.click("#evidence th:nth-child(7)")
    sizes = [int(s) for s in page.locator("#evidence tbody td:nth-child(7)").all_inner_texts()
             if s.isdigit()]  # fmt: skip
    assert sizes == sorted(sizes)
    if screens:
        page.screenshot(path=str(Path(screens) / "alert.png"), full_page=True)
    alert_url = page.url
    page.fill("#escalate-reason", "Stacked asks withdrawn before trading: possible layering")
    page.click("#escalate")
    page.wait_for_selector("text=Recorded: escalate")
    assert "escalated" in page.inner_text("h1")
    # the analyst may not close it (four eyes): no close form is offered
    assert page.locator("#close").count() == 0
    analyst.close()

    supervisor = browser.new_context()
    page = supervisor.new_page()
    log_in(page, base, "sue")
    page.goto(alert_url)
    page.select_option("#disposition", "suspicious_report_to_regulator")
    page.fill("#close-reason", "Reviewed the order book: report filed")
    page.click("#close")
    page.wait_for_selector("text=Recorded: close")
    assert "closed" in page.inner_text("h1")
    trail = page.inner_text("#audit")
    assert "escalate" in trail and "possible layering" in trail and "ann" in trail
    assert "close" in trail and "report filed" in trail and "sue" in trail
    page.goto(f"{base}/audit")
    assert "Chain intact" in page.inner_text("#chain")
    supervisor.close()
