"""Active verification end to end: a real mitmdump with `pollwatch_verify=true`, a client polling
through it, the sample API behind it; then what the database, `pollwatch show` and the report
say about the checks pollwatch sent. One capture for the module."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
import sqlite_utils
from click.testing import CliRunner
from pollwatch.cli.app import main
from pollwatch.demo.api import STUCK_ETAG, Timing
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.report.page import write_report
from pollwatch.store.database import COLUMNS, SCHEMA_VERSION, connect
from test_verify import Origin


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """An etag-stuck job whose client only ever gets 304s through the proxy; returns (db, origin,
    job id, client polls); the proxy's output lines are kept on the module as `LINES`."""
    db = tmp_path_factory.mktemp("verify-e2e") / "live.sqlite"
    origin = Origin(Timing(queued_s=0.15, running_s=0.15))
    try:
        with (ProxyProcess(db, options=["pollwatch_verify=true", "pollwatch_verify_interval=0"]) as proxy,
              httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as client):
            job_id = client.post(f"{origin.url}/api/exports?fault=etag-stuck").json()["id"]
            time.sleep(0.4)
            statuses = []
            for _ in range(2):  # one check at a time per job: the second poll waits for the first
                statuses.append(client.get(f"{origin.url}/api/exports/{job_id}?token=s3cret",
                                           headers={"If-None-Match": STUCK_ETAG}).status_code)
                deadline = time.monotonic() + 5
                while len(origin.checks) < len(statuses) and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.1)  # the answer reaches the addon
            proxy.stop()
            LINES[:] = proxy.lines
    finally:
        origin.stop()
    return db, origin, job_id, statuses


LINES: list[str] = []


def rows(db, sql: str, *args) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def test_the_live_proxy_checks_304s_at_the_origin_and_raises_etag_reused_across_states(capture):
    db, origin, _, statuses = capture
    assert statuses == [304, 304] and len(origin.checks) == 2
    codes = {r["code"]: r["severity"] for r in rows(db, "select code, severity from findings")}
    assert codes["etag-reused-across-states"] == "error"
    # pollwatch's own requests went straight to the origin: the proxy saw only the client's
    assert [r["status"] for r in rows(db, "select status from polls order by id")] == [202, 304, 304]


def test_each_check_is_stored_with_its_url_without_secrets(capture):
    db, *_ = capture
    checks = rows(db, "select * from checks order by id")
    assert [c["result"] for c in checks] == ["etag-reused-across-states"] * 2
    assert all(c["url"].endswith("?token=REDACTED") and c["status"] == 200 for c in checks)
    assert (checks[0]["client_state"], checks[0]["origin_state"], checks[0]["origin_etag"]) == (
        "queued", "succeeded", STUCK_ETAG)


def test_no_line_the_proxy_prints_carries_a_checked_urls_secret(capture):
    assert any("origin check of job" in line for line in LINES)
    assert not any("s3cret" in line for line in LINES)


def test_show_lists_what_pollwatch_sent(capture):
    db, _, job_id, _ = capture
    runner = CliRunner()
    detail = json.loads(runner.invoke(main, ["show", job_id, "--db", str(db), "--format", "json"]).stdout)
    assert [c["result"] for c in detail["checks"]] == ["etag-reused-across-states"] * 2
    assert detail["support"]["checks"] == {"etag-reused-across-states": 2}
    text = runner.invoke(main, ["show", job_id, "--db", str(db)], env={"COLUMNS": "250"}).output
    assert "origin checks pollwatch sent" in text and "origin checks:  etag-reused-across-states x2" in text


def test_the_report_shows_the_checks_in_the_jobs_section(capture, tmp_path):
    db, *_ = capture
    out = tmp_path / "report.html"
    write_report(db, out)
    page = out.read_text()
    assert "2 origin check(s) pollwatch sent" in page and page.count('class="check found"') == 2


def test_an_older_database_gets_the_checks_table_and_keeps_its_schema_version(tmp_path):
    path = tmp_path / "old.sqlite"
    connect(path).conn.close()
    with sqlite3.connect(path) as conn:
        conn.execute("drop table checks")  # as pollwatch wrote it before checks existed
    conn = connect(path).conn
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    version = conn.execute("select value from meta where key = 'schema_version'").fetchone()[0]
    conn.close()
    assert set(COLUMNS) <= tables and int(version) == SCHEMA_VERSION == 1


def test_a_read_only_older_database_reads_as_one_without_checks(tmp_path):
    from pollwatch.store.database import _add_missing_tables
    from pollwatch.store.query import list_checks

    path = tmp_path / "old.sqlite"
    connect(path).conn.close()
    with sqlite3.connect(path) as conn:
        conn.execute("drop table checks")
    read_only = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    _add_missing_tables(read_only, set(read_only.table_names()))  # what connect() does on opening
    assert read_only.conn.execute("select count(*) from checks").fetchone() == (0,)  # scan and report read it
    read_only.conn.row_factory = sqlite3.Row
    assert list_checks(read_only.conn, "any") == []
