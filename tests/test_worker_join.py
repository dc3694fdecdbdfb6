"""Worker events joined to recorded jobs in a real SQLite database: by job id, by an operation
id the proxy saw, and by a traceparent's trace id; unlinked ones summed up once per run; the
findings the same whether the worker log is ingested before or after `pollwatch analyze`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main
from pollwatch.sources.analysis import analyze_recordings

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
SHARED_CACHE = RECORDINGS / "shared-cache.flows"
HEALTHY = RECORDINGS / "healthy.flows"


def rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def job_facts(recording, tmp_path):
    """(job id, created_at, first poll time, one request id the proxy saw) of the recording's job."""
    db = tmp_path / "facts.sqlite"
    analyze_recordings([recording], db)
    [job] = rows(db, "select * from jobs")
    polls = rows(db, "select * from polls where job_key = ? and kind = 'poll' order by response_ts", job["key"])
    request_id = next(json.loads(p["ids"])["x-request-id"] for p in polls if "x-request-id" in json.loads(p["ids"]))
    return job["job_id"], job["created_at"], polls[0]["request_ts"], request_id


def worker_log(tmp_path, lines, name="worker.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def ingest(db, *paths, extra=()):
    result = CliRunner().invoke(main, ["worker-log", *map(str, paths), "--db", str(db), "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def worker_findings(db):
    return sorted((f["code"], f["job_id"], f["count"], f["message"])
                  for f in rows(db, "select * from findings where key like '%:worker'"))


@pytest.fixture
def shared_cache(tmp_path):
    job_id, created, first_poll, request_id = job_facts(SHARED_CACHE, tmp_path)
    return {"job_id": job_id, "created": created, "done": first_poll - 0.05, "request_id": request_id}


def test_events_naming_the_job_id_join_the_job_and_show_the_client_behind_the_worker(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "succeeded"}])
    summary = ingest(db, log)
    assert summary["linked"] == 1
    codes = {c for c, *_ in worker_findings(db)}
    assert {"client-behind-worker", "stale-status"} <= codes


def test_events_naming_only_an_operation_id_the_proxy_saw_join_the_job(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "request_id": shared_cache["request_id"],
                                 "state": "succeeded"}])
    ingest(db, log)
    [event] = rows(db, "select * from worker_events")
    assert event["job_key"] is not None and event["job_id"] is None
    assert "client-behind-worker" in {c for c, *_ in worker_findings(db)}


def test_a_traceparent_the_client_sent_joins_by_its_trace_id():
    from pollwatch.core.worker import WorkerEvent
    from pollwatch.core.worker_join import WorkerJoin

    join = WorkerJoin()
    join.add_job("s/1", "e-1", 100.0)
    join.add_ids("s/1", ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
    event = WorkerEvent(ts=101.0, operation_ids=["4bf92f3577b34da6a3ce929d0e0e4736"], state_word="done")
    assert join.job_of(event) == "s/1"


def test_events_naming_nothing_the_proxy_saw_are_summed_up_once_per_run(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": "other-1", "state": "succeeded"},
                                {"ts": shared_cache["done"], "job_id": "other-2", "state": "running"}])
    ingest(db, log)
    [unlinked] = rows(db, "select * from findings where code = 'worker-log-unlinked'")
    assert unlinked["severity"] == "info" and unlinked["job_key"] is None
    assert json.loads(unlinked["evidence"])["unlinked"] == 2
    assert "client-behind-worker" not in {c for c, *_ in worker_findings(db)}


def test_ingesting_before_or_after_analyze_gives_the_same_findings(tmp_path, shared_cache):
    log = worker_log(tmp_path, [
        {"ts": shared_cache["created"], "job_id": shared_cache["job_id"], "state": "queued"},
        {"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "succeeded"},
        {"ts": shared_cache["done"], "job_id": "nobody", "state": "succeeded"},
    ])
    after, before = tmp_path / "after.sqlite", tmp_path / "before.sqlite"
    analyze_recordings([SHARED_CACHE], after)
    ingest(after, log)
    ingest(before, log)
    analyze_recordings([SHARED_CACHE], before)
    assert worker_findings(after) == worker_findings(before) != []
    joined = "select job_id, state, job_key is not null as linked from worker_events order by id"
    assert rows(after, joined) == rows(before, joined)


def test_a_worker_clock_behind_the_proxy_is_corrected_by_the_offset(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    skewed = shared_cache["done"] + 3600  # the worker's clock runs an hour ahead: it seems to finish later
    log = worker_log(tmp_path, [{"ts": skewed, "job_id": shared_cache["job_id"], "state": "succeeded"}])
    ingest(db, log)
    assert "client-behind-worker" not in {c for c, *_ in worker_findings(db)}
    ingest(db, log, extra=["--worker-clock-offset", "-3600"])
    assert "client-behind-worker" in {c for c, *_ in worker_findings(db)}


def test_a_healthy_job_whose_worker_agrees_raises_nothing(tmp_path):
    job_id, created, _, _ = job_facts(HEALTHY, tmp_path)
    db = tmp_path / "db.sqlite"
    analyze_recordings([HEALTHY], db)
    [job] = rows(db, "select * from jobs")
    log = worker_log(tmp_path, [{"ts": created, "job_id": job_id, "state": "queued"},
                                {"ts": job["terminal_at"] - 0.01, "job_id": job_id, "state": "succeeded"}])
    ingest(db, log)
    assert worker_findings(db) == []


def test_a_failing_run_writes_nothing(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    good = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "done"}])
    result = CliRunner().invoke(main, ["worker-log", str(good), str(tmp_path / "missing.jsonl"), "--db", str(db)])
    assert result.exit_code != 0 and "missing.jsonl" in result.output
    assert rows(db, "select * from worker_events") == []
    assert rows(db, "select * from sessions where source = 'worker-log'") == []


def test_bad_lines_are_reported_once_with_an_example(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    log = tmp_path / "w.jsonl"
    log.write_text('{"ts": 1767323045, "job_id": "x", "state": "queued"}\nnot json\nalso not json\n')
    summary = ingest(db, log)
    assert summary["bad_lines"] == 2 and "w.jsonl:2" in summary["bad_example"]


def healthy_job(tmp_path):
    """The healthy recording analysed into a database: (db, job row, its polls oldest first)."""
    db = tmp_path / "db.sqlite"
    analyze_recordings([HEALTHY], db)
    [job] = rows(db, "select * from jobs")
    polls = rows(db, "select * from polls where job_key = ? order by response_ts", job["key"])
    return db, job, polls


def test_a_worker_that_logged_failed_and_then_retried_is_not_ahead_of_the_client(tmp_path):
    db, job, polls = healthy_job(tmp_path)
    running = next(p["request_ts"] for p in polls if p["state"] == "running")
    log = worker_log(tmp_path, [
        {"ts": running - 0.1, "job_id": job["job_id"], "state": "running"},
        {"ts": running + 0.05, "job_id": job["job_id"], "state": "failed", "msg": "attempt 1 failed, will retry"},
        {"ts": running + 0.10, "job_id": job["job_id"], "state": "running", "msg": "attempt 2"},
        {"ts": polls[-1]["request_ts"] - 0.001, "job_id": job["job_id"], "state": "succeeded"}])
    ingest(db, log)
    assert worker_findings(db) == []


def test_a_stored_time_no_calendar_can_show_is_printed_as_a_number():
    from pollwatch.store.query import iso

    assert iso(1e300) == "1e+300"


def test_an_event_joins_the_job_created_before_it_not_a_namesake_created_just_after():
    from pollwatch.core.worker import WorkerEvent
    from pollwatch.core.worker_join import WorkerJoin

    join = WorkerJoin()
    join.add_job("run-a/1", "1", 1000.0)
    join.add_job("run-b/1", "1", 1002.0)  # job ids restart per server: a second run's job "1"
    assert join.job_of(WorkerEvent(ts=1001.0, job_id="1", state_word="succeeded")) == "run-a/1"


def test_an_event_logged_just_before_its_job_reached_the_proxy_still_joins_it():
    from pollwatch.core.worker import WorkerEvent
    from pollwatch.core.worker_join import WorkerJoin

    join = WorkerJoin()
    join.add_job("run-a/1", "1", 1000.0)
    assert join.job_of(WorkerEvent(ts=999.0, job_id="1", state_word="queued")) == "run-a/1"


def test_ingesting_the_same_file_twice_stores_its_events_once(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "succeeded"}])
    ingest(db, log)
    assert ingest(db, log)["duplicates"] == 1
    assert len(rows(db, "select * from worker_events")) == 1


def test_ingesting_the_same_file_twice_sums_up_its_unlinked_events_once(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": "nobody", "state": "succeeded"}])
    ingest(db, log)
    ingest(db, log)
    assert len(rows(db, "select * from findings where code = 'worker-log-unlinked'")) == 1


def test_the_joined_count_is_this_runs_not_the_whole_databases(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    ingest(db, worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "done"}]))
    later = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": "nobody", "state": "done"}], name="b.jsonl")
    assert ingest(db, later)["linked"] == 0


def test_a_locked_database_is_reported_in_one_line(tmp_path, shared_cache):
    db = tmp_path / "db.sqlite"
    analyze_recordings([SHARED_CACHE], db)
    log = worker_log(tmp_path, [{"ts": shared_cache["done"], "job_id": shared_cache["job_id"], "state": "done"}])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin immediate")
    try:
        result = CliRunner().invoke(main, ["worker-log", str(log), "--db", str(db)])
    finally:
        holder.execute("rollback")
        holder.close()
    assert result.exit_code != 0 and "database is locked" in result.output
    assert not isinstance(result.exception, sqlite3.Error)


@pytest.mark.parametrize("job_id", ["e-1001", "k3j9x2m8q7w1z5c4v6b0n2h8g7f3d1s9a4p6o2i8u5y7t1r3", "job 42",
                                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2ItNDIifQ.c2lnbmF0dXJlLXBhcnQ"])
def test_a_worker_events_job_id_is_stored_as_the_jobs_table_stores_the_same_id(job_id):
    """Secret-shaped ids become fingerprints on both sides alike, so the worker's event still joins."""
    from pollwatch.core.redact import safe_value
    from pollwatch.core.worker import safe_id

    assert safe_id(job_id) == safe_value(job_id)
