"""Active verification with a real browser: headless Chromium polls the sample export page through a
real mitmdump with `pollwatch_verify=true`. The browser answers its polls from its own cache (or
gets 304s), so the proxy alone could only suspect; the origin check proves what the page missed."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from helpers import live_job_rows, run_export_page

PROXY_OPTIONS = ["pollwatch_verify=true", "pollwatch_verify_interval=0", "pollwatch_abandon_after=3"]
"""The module's mitmdump (conftest's `proxy`): checks as often as one at a time allows, and polling
called abandoned after 3 s of silence so the test need not wait a minute."""


def finding_evidence(db, job_id: str, code: str, ready, timeout: float = 15.0) -> dict | None:
    """The evidence of a job's finding once `ready(evidence)` says so (the writer flushes about every
    0.5 s, the ticker runs once a second), else the last one read (or None)."""
    deadline = time.monotonic() + timeout
    evidence = None
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            row = conn.execute("select f.evidence from findings f join jobs j on j.key = f.job_key "
                               "where j.job_id = ? and f.code = ?", (job_id, code)).fetchone()
        evidence = json.loads(row[0]) if row else None
        if evidence is not None and ready(evidence):
            break
        time.sleep(0.2)
    return evidence


def test_a_stuck_etag_the_browser_only_revalidates_is_proved_etag_reused_across_states(browser, proxy, api,
                                                                                      artifacts):
    shown = run_export_page(browser, api, "etag-stuck", artifacts, name="etag-stuck-verified")
    assert shown["state"] != "succeeded", shown  # the bug: the page keeps its stored copy
    rows = live_job_rows(proxy.db, shown["job_id"], lambda r: "etag-reused-across-states" in r["findings"])
    assert "etag-reused-across-states" in rows["findings"], rows
    polls = [p for p in rows["polls"] if p["kind"] == "poll"]
    assert {p["state"] for p in polls} == {"queued"}, polls  # no 200 ever showed the new state with the old ETag
    assert all(p["status"] == 304 for p in polls[1:]), polls
    evidence = finding_evidence(proxy.db, shown["job_id"], "etag-reused-across-states", lambda e: True)
    assert evidence["verified_by"] == "origin check" and evidence["client_state"] != evidence["origin_state"]


def test_a_max_age_status_the_browser_serves_itself_gets_the_origins_state_as_evidence(browser, proxy, api,
                                                                                      artifacts):
    shown = run_export_page(browser, api, "cached-status", artifacts, name="cached-status-verified")
    assert shown["state"] == "queued" and shown["polls"] > 1, shown  # answered from the browser's cache
    evidence = finding_evidence(proxy.db, shown["job_id"], "polling-abandoned", lambda e: "origin_check" in e)
    assert evidence is not None and "origin_check" in evidence, evidence
    assert evidence["origin_check"]["origin_state"] == "succeeded", evidence
    assert evidence["origin_check"]["client_last_state"] == "queued", evidence


@pytest.mark.parametrize("fault", ["cached-status", "etag-stuck"])
def test_every_check_pollwatch_sent_is_stored_beside_the_job(browser, proxy, api, artifacts, fault):
    shown = run_export_page(browser, api, fault, artifacts, name=f"{fault}-checks")
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(proxy.db) as conn:
            checks = conn.execute("select c.reason, c.status, c.result from checks c join jobs j on j.key = c.job_key "
                                  "where j.job_id = ?", (shown["job_id"],)).fetchall()
        if checks or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert checks and all(status == 200 for _, status, _ in checks), checks
