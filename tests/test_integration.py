"""End to end: a real mitmdump with the addon, the sample job API on loopback, httpx polling
through the proxy, and the SQLite file read while the proxy is still writing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
import threading
import time

import httpx
import pytest

from helpers import LIVE_TIMING, wait_for
from pollwatch.demo.api import SampleAPI

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}



@pytest.fixture
def client(proxy):
    with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as c:
        yield c


def create(client: httpx.Client, api: SampleAPI, fault: str) -> str:
    response = client.post(f"{api.url}/api/exports?fault={fault}")
    assert response.status_code == 202
    return response.json()["id"]


def poll_until_done(client: httpx.Client, url: str, max_polls: int = 40) -> list[tuple[int, str | None]]:
    seen = []
    for _ in range(max_polls):
        response = client.get(url)
        state = response.json().get("status") if response.headers.get("content-type", "").startswith("application/json") else None
        seen.append((response.status_code, state))
        if response.status_code in (404, 410) or state in TERMINAL:
            break
        time.sleep(0.1)
    return seen


def job_rows(proxy, job_id: str, timeout: float = 5.0):
    """Read the live database until the job's rows are there (the writer flushes every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(proxy.db) as db:
            db.row_factory = sqlite3.Row
            job = db.execute("select * from jobs where job_id = ?", (job_id,)).fetchone()
            if job is not None:
                findings = [r["code"] for r in db.execute("select code from findings where job_key = ?", (job["key"],))]
                polls = db.execute("select count(*) from polls where job_key = ?", (job["key"],)).fetchone()[0]
                if time.monotonic() > deadline or (polls >= job["polls"] + 1):
                    return dict(job), findings
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached the database")
        time.sleep(0.2)


def settle(proxy, job_id, codes_expected=(), timeout=5.0):
    """Wait for the expected live lines, then give the writer one flush."""
    for code in codes_expected:
        assert wait_for(proxy, f"{code} job {job_id}", timeout), proxy.output()[-3000:]
    time.sleep(0.7)
    return job_rows(proxy, job_id)


def test_healthy_job_is_tracked_to_succeeded_without_warnings(proxy, api, client):
    job_id = create(client, api, "healthy")
    poll_until_done(client, f"{api.url}/api/exports/{job_id}")
    job, findings = settle(proxy, job_id)
    assert json.loads(job["states"]) == ["queued", "running", "succeeded"]
    assert findings == []
    assert not [line for line in proxy.lines if f"job {job_id}" in line]


def test_cacheable_status_is_warned_live_and_stored(proxy, api, client):
    job_id = create(client, api, "cached-status")
    poll_until_done(client, f"{api.url}/api/exports/{job_id}")
    job, findings = settle(proxy, job_id, ["status-cacheable"])
    assert "status-cacheable" in findings
    assert job["terminal_state"] == "succeeded"


def test_out_of_order_status_is_flagged(proxy, api, client):
    job_id = create(client, api, "slow-then-fast")
    url = f"{api.url}/api/exports/{job_id}"
    client.get(url)                                                 # 1st GET: answered at once
    time.sleep(0.3)
    slow = threading.Thread(target=client.get, args=(url,))         # 2nd GET: held back by the server
    slow.start()
    time.sleep(0.5)
    with httpx.Client(proxy=proxy.url, trust_env=False) as other:   # 3rd GET overtakes it
        other.get(url)
    slow.join()
    job, findings = settle(proxy, job_id, ["response-reordered"])
    assert "response-reordered" in findings


def test_expired_job(proxy, api, client):
    job_id = create(client, api, "expired")
    url = f"{api.url}/api/exports/{job_id}"
    time.sleep(LIVE_TIMING.queued_s + LIVE_TIMING.running_s + 0.2)
    assert client.get(url).status_code == 410
    job, findings = settle(proxy, job_id, ["job-expired"])
    assert job["terminal_state"] == "expired"


def test_missing_job(proxy, api, client):
    job_id = create(client, api, "missing")
    seen = poll_until_done(client, f"{api.url}/api/exports/{job_id}")
    assert seen[-1][0] == 404
    job, findings = settle(proxy, job_id, ["job-missing"])
    assert "job-missing" in findings


def test_failed_job_ends_failed_without_warnings(proxy, api, client):
    job_id = create(client, api, "failed")
    poll_until_done(client, f"{api.url}/api/exports/{job_id}")
    job, findings = settle(proxy, job_id)
    assert job["terminal_state"] == "failed" and findings == []


def test_database_is_readable_with_sqlite_utils_while_the_proxy_writes(proxy, api, client):
    before = table_counts(proxy.db)
    create(client, api, "healthy")
    time.sleep(0.7)
    after = table_counts(proxy.db)
    assert after["jobs"] == before.get("jobs", 0) + 1 and after["polls"] > before.get("polls", 0)


def table_counts(db: Path) -> dict[str, int]:
    """Row counts as sqlite-utils reports them, read beside the writing proxy."""
    out = subprocess.run([str(Path(sys.executable).with_name("sqlite-utils")), "tables", str(db), "--counts"],
                         capture_output=True, text=True, check=True, timeout=30)
    return {row["table"]: row["count"] for row in json.loads(out.stdout)}


def test_no_secrets_reach_the_database(proxy, api, client, tmp_path):
    secrets = ["Bearer sk-live-SECRET-TOKEN-123", "session=SESSIONSECRET456", "APIKEYSECRET789",
               "QUERYSECRET000", "BODYSECRET111"]
    response = client.post(f"{api.url}/api/exports?fault=healthy&token=QUERYSECRET000",
                           headers={"Authorization": secrets[0], "Cookie": secrets[1], "X-Api-Key": secrets[2]},
                           content=b'{"password": "BODYSECRET111"}')
    job_id = response.json()["id"]
    client.get(f"{api.url}/api/exports/{job_id}", headers={"Authorization": secrets[0], "Cookie": secrets[1]})
    settle(proxy, job_id)
    with sqlite3.connect(proxy.db) as db:
        db.execute("pragma wal_checkpoint(full)")
    raw = b"".join(p.read_bytes() for p in proxy.db.parent.iterdir() if p.name.startswith(proxy.db.name))
    for secret in ["sk-live-SECRET-TOKEN-123", "SESSIONSECRET456", "APIKEYSECRET789", "BODYSECRET111",
                   "QUERYSECRET000"]:
        assert secret.encode() not in raw, secret
