"""The SQL views and the Datasette metadata, over a database the product itself built: recorded
demo scenarios through the offline analyser, one session per recording."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import build_database
from pollwatch.store.database import connect
from pollwatch.store.views import METADATA_DATABASE, VIEWS, datasette_metadata, ensure_views

SCENARIOS = ("healthy", "healthy-azure", "cached-status", "etag-stuck", "gives-up", "lost-id", "replica-lag",
             "shared-cache", "too-fast", "wrong-env")


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return build_database(tmp_path_factory.mktemp("views") / "pollwatch.sqlite", SCENARIOS)


@pytest.fixture(scope="module")
def conn(db):
    connection = connect(db).conn
    ensure_views(connection)
    connection.row_factory = sqlite3.Row
    yield connection
    connection.close()


def rows(conn, sql: str, *args) -> list[dict]:
    return [dict(r) for r in conn.execute(sql, args)]


def session_of(conn, label: str) -> str:
    return conn.execute("select id from sessions where label = ?", (label,)).fetchone()[0]


def view_sql(conn) -> dict[str, str]:
    return dict(conn.execute("select name, sql from sqlite_master where type = 'view'").fetchall())


# --- ensure_views --------------------------------------------------------------------------------

def test_ensure_views_creates_every_view(conn):
    assert set(VIEWS) <= set(view_sql(conn))


def test_ensure_views_writes_nothing_when_the_views_are_current(db, conn):
    read_only = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ensure_views(read_only)  # would fail with "attempt to write a readonly database"
        assert read_only.total_changes == 0
    finally:
        read_only.close()


def test_ensure_views_replaces_a_view_whose_sql_changed(tmp_path):
    path = tmp_path / "old.sqlite"
    connection = connect(path).conn
    connection.executescript("drop view if exists job_summary; create view job_summary as select key from jobs;")
    ensure_views(connection)
    assert "errors" in [c[1] for c in connection.execute("pragma table_info(job_summary)")]
    connection.close()


# --- what each view holds ------------------------------------------------------------------------

def test_job_summary_has_one_row_per_job(conn):
    assert conn.execute("select count(*) from job_summary").fetchone()[0] == \
        conn.execute("select count(*) from jobs").fetchone()[0]


def test_job_summary_counts_findings_by_severity_and_names_their_codes(conn):
    [job] = rows(conn, "select * from job_summary where session_id = ?", session_of(conn, "shared-cache"))
    assert (job["findings"], job["errors"], job["warnings"], job["infos"]) == (3, 1, 2, 0)
    assert job["codes"] == "stale-status, status-cacheable, status-from-shared-cache"
    assert (job["last_state"], job["terminal_state"]) == ("succeeded", "succeeded")


def test_stuck_jobs_holds_only_jobs_without_a_terminal_state(conn):
    stuck = rows(conn, "select s.label, st.job_id from stuck_jobs st join sessions s on s.id = st.session_id")
    assert sorted((r["label"], r["job_id"]) for r in stuck) == [
        ("gives-up", "e-1001"), ("lost-id", "e-1001"), ("lost-id", "e-100x"), ("wrong-env", "e-1001")]


def test_stuck_jobs_counts_idle_time_from_the_last_poll_to_the_session_end(conn):
    [job] = rows(conn, "select * from stuck_jobs where session_id = ?", session_of(conn, "gives-up"))
    ended, last_poll = conn.execute(
        "select s.ended_at, j.last_poll_at from sessions s join jobs j on j.session_id = s.id where s.id = ?",
        (job["session_id"],)).fetchone()
    assert job["idle_seconds"] == pytest.approx(ended - last_poll, abs=0.001)
    assert job["codes"] == "polling-abandoned" and job["last_state"] == "queued"


def test_stuck_jobs_counts_idle_time_to_now_while_the_session_is_open(tmp_path):
    connection = connect(build_database(tmp_path / "open.sqlite", ("gives-up",))).conn
    ensure_views(connection)
    with connection:
        connection.execute("update sessions set ended_at = null")
    as_of, idle, last_seen = connection.execute("select as_of, idle_seconds, last_seen_at from stuck_jobs").fetchone()
    assert as_of == pytest.approx(time.time(), abs=5) and idle == pytest.approx(as_of - last_seen, abs=0.001)
    connection.close()


def test_stuck_jobs_uses_the_creation_time_for_a_job_never_polled(conn):
    [job] = rows(conn, "select * from stuck_jobs where session_id = ? and job_id = 'e-1001'",
                 session_of(conn, "lost-id"))
    assert job["polls"] == 0 and job["last_seen_at"] == job["created_at"]


def test_cached_polls_holds_polls_a_cache_served_or_may_reuse(conn):
    found = {(r["label"], r["served_by"], r["cache_verdict"]) for r in rows(conn, """
        select s.label, c.served_by, c.cache_verdict from cached_polls c join sessions s on s.id = c.session_id""")}
    assert ("cached-status", "origin", "fresh") in found
    assert ("shared-cache", "shared-cache", "fresh") in found
    assert ("etag-stuck", "client-cache", "revalidate") in found
    assert not {label for label, *_ in found} & {"healthy", "healthy-azure", "replica-lag"}


def test_cached_polls_lifts_cache_control_out_of_the_headers(conn):
    controls = {r["cache_control"] for r in rows(conn, "select cache_control from cached_polls where session_id = ?",
                                                 session_of(conn, "cached-status"))}
    assert controls == {"max-age=30"}


def test_finding_counts_counts_findings_occurrences_and_jobs_per_code(conn):
    counts = {r["code"]: r for r in rows(conn, "select * from finding_counts")}
    abandoned = counts["polling-abandoned"]
    assert (abandoned["severity"], abandoned["count"], abandoned["jobs"], abandoned["sessions"]) == ("warning", 3, 3, 3)
    stale = counts["stale-status"]
    assert stale["count"] == 1 and stale["occurrences"] > 1  # raised once, seen again and counted
    assert counts["poll-too-fast"]["severity"] == "info"


def test_job_timeline_lists_every_exchange_with_its_offset_from_creation(conn):
    timeline = rows(conn, "select * from job_timeline where session_id = ? order by response_ts",
                    session_of(conn, "healthy-azure"))
    assert [t["kind"] for t in timeline] == ["create"] + ["poll"] * 13
    assert timeline[0]["offset_s"] == 0 and all(a["offset_s"] <= b["offset_s"] for a, b in itertools.pairwise(timeline))
    assert (timeline[1]["raw_state"], timeline[1]["state"]) == ("NotStarted", "queued")


def test_job_timeline_names_the_findings_first_raised_on_each_exchange(conn):
    timeline = rows(conn, "select findings from job_timeline where session_id = ? order by response_ts",
                    session_of(conn, "shared-cache"))
    flagged = [t["findings"] for t in timeline if t["findings"]]
    assert sorted(flagged) == ["stale-status", "status-cacheable", "status-from-shared-cache"]


# --- Datasette metadata ----------------------------------------------------------------------------

METADATA_PATH = Path(__file__).resolve().parent.parent / "addon" / "pollwatch" / "store" / "datasette_metadata.json"


def test_datasette_metadata_is_valid_json_with_a_title_and_description():
    metadata = json.loads(METADATA_PATH.read_text())
    assert metadata["title"] == "pollwatch" and metadata["description"]
    assert set(metadata["databases"]) == {METADATA_DATABASE}


def test_datasette_metadata_describes_every_table_view_and_column(conn):
    described = datasette_metadata()["databases"][METADATA_DATABASE]["tables"]
    names = [r[0] for r in conn.execute("select name from sqlite_master where type in ('table', 'view')")]
    for name in names:
        assert described[name]["description"], name
        columns = [c[1] for c in conn.execute(f"pragma table_info({name})")]
        assert list(described[name]["columns"]) == columns, name


def test_datasette_metadata_has_canned_queries_for_the_common_questions():
    queries = datasette_metadata()["databases"][METADATA_DATABASE]["queries"]
    assert set(queries) == {"stuck", "cached_status", "findings_by_code", "timeline"}
    assert queries["timeline"]["params"] == ["job_id"] and all(q["title"] for q in queries.values())


@pytest.mark.parametrize("name", ["stuck", "cached_status", "findings_by_code", "timeline"])
def test_every_canned_query_runs_against_a_real_database(conn, name):
    query = datasette_metadata()["databases"][METADATA_DATABASE]["queries"][name]
    params = {p: "op-1001" for p in re.findall(r":(\w+)", query["sql"])}
    assert set(params) == set(query.get("params", []))
    assert conn.execute(query["sql"], params).fetchall()


def test_datasette_metadata_is_named_for_the_database_file():
    metadata = datasette_metadata("pollwatch-demo")
    assert list(metadata["databases"]) == ["pollwatch-demo"]
    assert metadata["databases"]["pollwatch-demo"]["queries"]
