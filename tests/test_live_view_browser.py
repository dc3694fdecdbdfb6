"""End to end: headless Chromium keeps the live job view open, through the same real mitmdump that
httpx clients of the sample API poll through; jobs appear and change on screen without a reload.
A hostile server's markup (as a job id and a state word) is shown as text."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import quote, unquote

import httpx
import pytest

from helpers import CHROMIUM, QuietHandler, live_job_rows
from pollwatch.demo.clients import poll_job
from pollwatch.live.addon import DEFAULT_HOST, view_url

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (scripts/test installs the Debian package 'chromium'); "
                "skipping the browser tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
expect = sync_api.expect

VIEW = view_url(DEFAULT_HOST)
ON_SCREEN_MS = 10_000
MARKUP_ID = '<img id="planted-id" src="x" onerror="document.title=\'owned\'">'
MARKUP_STATE = '<b id="planted-state">running</b>'


@pytest.fixture
def view(browser):
    """The view open in a fresh page (clipboard allowed, so the copy button can be read back);
    afterwards, the page must not have logged an error (a script error, or anything the page's
    Content-Security-Policy refused)."""
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(VIEW)
        expect(page.locator("#status")).to_have_class("status live", timeout=ON_SCREEN_MS)
        page.evaluate("window.neverReloaded = true")
        yield page
    finally:
        context.close()
    assert errors == []


def row_of(page, job_id: str):
    return page.locator("#jobs tbody tr").filter(has=page.get_by_text(job_id, exact=True))


def test_jobs_appear_and_finish_on_screen_while_their_polls_cross_the_proxy(view, proxy, api, artifacts):
    page = view
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as client:
        outcome: dict[str, object] = {}
        polling = threading.Thread(target=lambda: outcome.update(
            healthy=poll_job(client, f"{api.url}/api/exports"),
            cached=poll_job(client, f"{api.url}/api/exports?fault=cached-status")))
        polling.start()
        healthy_id = "e-1001"  # the sample API numbers its jobs from 1001
        expect(row_of(page, healthy_id)).to_be_visible(timeout=ON_SCREEN_MS)  # while it is still being polled
        polling.join(timeout=30)
    healthy_id = outcome["healthy"].status_url.rsplit("/", 1)[-1]
    cached_id = outcome["cached"].status_url.rsplit("/", 1)[-1]
    expect(row_of(page, healthy_id).locator("td.state")).to_have_text("succeeded", timeout=ON_SCREEN_MS)
    expect(row_of(page, cached_id).locator(".chip")).to_have_text(["status-cacheable"], timeout=ON_SCREEN_MS)
    expect(row_of(page, healthy_id).locator(".chip")).to_have_count(0)

    row_of(page, cached_id).click()
    expect(page.locator("#d-id")).to_have_text(cached_id)
    expect(page.locator("#d-timeline svg.timeline .poll")).not_to_have_count(0, timeout=ON_SCREEN_MS)
    assert page.locator("#d-timeline svg.timeline").evaluate("svg => svg instanceof SVGSVGElement")
    expect(page.locator("#d-findings")).to_contain_text("status-cacheable")
    expect(page.locator("#d-findings .fix")).to_contain_text("Fix: Send `Cache-Control: no-store`")
    expect(page.locator("#d-support")).to_contain_text(f"job:            {cached_id}")
    page.click("#copy")
    expect(page.locator("#copied")).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#d-support").text_content()
    expect(row_of(page, cached_id).locator("td.state")).to_have_text("succeeded", timeout=ON_SCREEN_MS)
    page.screenshot(path=str(artifacts / "live-view.png"), full_page=True)

    page.fill("#q", cached_id)
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator("#count")).to_have_text("1–1 of 1")
    assert page.evaluate("window.neverReloaded") is True
    rows = live_job_rows(proxy.db, cached_id, lambda r: True)
    assert rows["job"]["host"] == api.url and "status-cacheable" in rows["findings"]
    assert not [line for line in proxy.lines if DEFAULT_HOST in line and "live job view" not in line]


class _HostileHandler(QuietHandler):
    """A job API whose job id and state word are markup."""

    def do_POST(self) -> None:
        self.read_body()
        self.answer(202, json.dumps({"id": MARKUP_ID, "status": "queued"}).encode(),
                    {"Content-Type": "application/json", "Location": "/jobs/" + quote(MARKUP_ID, safe=""),
                     "Cache-Control": "no-store"})

    def do_GET(self) -> None:
        assert unquote(self.path) == "/jobs/" + MARKUP_ID
        self.answer(200, json.dumps({"id": MARKUP_ID, "status": MARKUP_STATE}).encode(),
                    {"Content-Type": "application/json", "Cache-Control": "no-store"})


def test_markup_sent_as_a_job_id_or_a_state_word_is_shown_as_text(view, proxy, artifacts):
    page = view
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as client:
            location = client.post(f"{origin}/jobs").headers["location"]
            client.get(origin + location)
    finally:
        server.shutdown()
        server.server_close()
    expect(row_of(page, MARKUP_ID)).to_be_visible(timeout=ON_SCREEN_MS)
    row_of(page, MARKUP_ID).click()
    expect(page.locator("#d-id")).to_have_text(MARKUP_ID)
    expect(page.locator("#d-findings")).to_contain_text(f"state word '{MARKUP_STATE}'", timeout=ON_SCREEN_MS)
    expect(page.locator("#d-timeline svg.timeline .poll")).not_to_have_count(0, timeout=ON_SCREEN_MS)
    page.screenshot(path=str(artifacts / "live-view-markup.png"), full_page=True)
    assert page.locator("#planted-id, #planted-state").count() == 0
    assert page.title() != "owned"
