"""End to end with a real browser: headless Chromium (Playwright) loads the sample export page
through a real mitmdump with the pollwatch addon; the page's fetch() polling uses the browser's
own HTTP cache, which is exactly where the seed bug (cacheable status responses) bites users."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import CHROMIUM, PAGE_MAX_POLLS, live_job_rows, run_export_page, wait_for
from pollwatch.demo.api import STUCK_ETAG, SampleAPI

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (scripts/test installs the Debian package 'chromium'); "
                "skipping the browser tests", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


def run_page(browser, api: SampleAPI, fault: str, artifacts: Path) -> dict[str, Any]:
    return run_export_page(browser, api, fault, artifacts)


def job_rows(proxy, job_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return live_job_rows(proxy.db, job_id, ready)


def status_gets(rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in rows["polls"] if p["kind"] == "poll" and p["method"] == "GET"]


def alerts_about(proxy, job_id: str) -> list[str]:
    return [line for line in proxy.lines
            if f"job {job_id}:" in line and ("] warning:" in line or "] error:" in line)]


def test_max_age_status_is_answered_by_the_browser_cache_and_flagged(browser, proxy, api, artifacts):
    shown = run_page(browser, api, "cached-status", artifacts)
    job_id = shown["job_id"]

    # The UI polled until it gave up, yet never saw the job finish (it finished after ~1.2 s).
    assert shown["polls"] == PAGE_MAX_POLLS, shown
    assert shown["state"] in ("queued", "running"), shown

    assert wait_for(proxy, f"status-cacheable job {job_id}:", 5), proxy.output()[-3000:]
    rows = job_rows(proxy, job_id, lambda r: "status-cacheable" in r["findings"] and status_gets(r))
    assert "status-cacheable" in rows["findings"], rows
    # Almost every poll was answered from Chromium's cache and never reached the proxy: the UI
    # froze on the first (cacheable) answer.
    gets = status_gets(rows)
    assert 1 <= len(gets) and len(gets) * 10 <= shown["polls"], (gets, shown)
    assert gets[0]["status"] == 200 and gets[0]["state"] == shown["state"], gets
    assert rows["job"]["terminal_state"] is None, rows["job"]


def test_stuck_etag_keeps_the_browser_on_queued_and_is_flagged(browser, proxy, api, artifacts):
    shown = run_page(browser, api, "etag-stuck", artifacts)
    job_id = shown["job_id"]

    # Every revalidation got 304 for the ETag of the first (queued) answer.
    assert shown["polls"] == PAGE_MAX_POLLS, shown
    assert shown["state"] == "queued", shown
    assert wait_for(proxy, f"status-not-modified job {job_id}:", 5), proxy.output()[-3000:]
    rows = job_rows(proxy, job_id, lambda r: "status-not-modified" in r["findings"]
                    and len(status_gets(r)) >= shown["polls"])
    assert "status-not-modified" in rows["findings"], rows
    # Each poll reached the server (revalidation, not a cache hit): one 200, then only 304s.
    gets = status_gets(rows)
    assert len(gets) == shown["polls"], gets
    assert gets[0]["status"] == 200 and gets[0]["state"] == "queued", gets[0]
    assert all(p["status"] == 304 for p in gets[1:]), gets

    # Another client without If-None-Match reads the finished job under the same ETag.
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as other:
        response = other.get(api.url + shown["status_path"])
    assert response.status_code == 200 and response.json()["status"] == "succeeded", response.text
    assert response.headers["ETag"] == STUCK_ETAG
    assert wait_for(proxy, f"etag-reused-across-states job {job_id}:", 5), proxy.output()[-3000:]
    rows = job_rows(proxy, job_id, lambda r: "etag-reused-across-states" in r["findings"])
    assert "etag-reused-across-states" in rows["findings"], rows


def test_no_store_status_lets_the_browser_reach_succeeded_without_warnings(browser, proxy, api, artifacts):
    shown = run_page(browser, api, "healthy", artifacts)
    job_id = shown["job_id"]

    assert shown["state"] == "succeeded", shown
    assert 2 <= shown["polls"] < PAGE_MAX_POLLS, shown
    # Every poll of the page reached the proxy (nothing came from the browser cache).
    rows = job_rows(proxy, job_id, lambda r: r["job"]["terminal_state"] == "succeeded"
                    and len(status_gets(r)) >= shown["polls"])
    assert len(status_gets(rows)) == shown["polls"], rows["polls"]
    assert json.loads(rows["job"]["states"])[-1] == "succeeded", rows["job"]
    assert rows["job"]["terminal_state"] == "succeeded", rows["job"]
    assert rows["findings"] == [], rows["findings"]
    assert alerts_about(proxy, job_id) == []
