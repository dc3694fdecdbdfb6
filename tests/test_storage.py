"""SQLite storage: schema, versioning, batching off the caller's thread, secrets, bad files."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time

import pytest

from helpers import Traffic
from pollwatch.store.database import SCHEMA_VERSION, Session, StorageError, Store, connect
from pollwatch.core.tracking import Tracker


def run_job(store: Store, *, polls: int = 3) -> Traffic:
    traffic = Traffic(Tracker(key_prefix=store.session.id + "/"))
    updates = [traffic.create(), *[traffic.poll("running") for _ in range(polls)], traffic.poll("succeeded", cache="max-age=9")]
    for update in updates:
        store.submit(update)
    return traffic


def count(path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"select count(*) from {table}").fetchone()[0]


def test_rows_land_in_their_tables_with_foreign_keys(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path) as store:
        run_job(store)
    assert [count(path, t) for t in ("sessions", "jobs", "polls", "transitions", "findings")] == [1, 1, 5, 3, 1]
    with sqlite3.connect(path) as db:
        assert db.execute("pragma foreign_key_check").fetchall() == []
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_job_row_is_updated_not_duplicated(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path) as store:
        run_job(store, polls=10)
    with sqlite3.connect(path) as db:
        assert db.execute("select polls, terminal_state from jobs").fetchall() == [(11, "succeeded")]


def test_rows_are_flushed_within_a_second_while_running(tmp_path):
    path = tmp_path / "pw.sqlite"
    store = Store(path).start()
    try:
        run_job(store)
        time.sleep(1.0)
        assert count(path, "polls") == 5
    finally:
        store.close()


def test_submit_does_not_touch_the_database_on_the_callers_thread(tmp_path, monkeypatch):
    threads = set()
    original = Store._write

    def spy(self, db, batch):
        threads.add(threading.current_thread().name)
        return original(self, db, batch)

    monkeypatch.setattr(Store, "_write", spy)
    with Store(tmp_path / "pw.sqlite") as store:
        run_job(store)
    assert threads == {"pollwatch-writer"}


def test_many_sessions_share_one_database(tmp_path):
    path = tmp_path / "pw.sqlite"
    for _ in range(2):
        with Store(path) as store:
            run_job(store)
    with sqlite3.connect(path) as db:
        assert db.execute("select count(distinct session_id) from jobs").fetchone()[0] == 2
        assert db.execute("select count(*) from sessions where ended_at is not null").fetchone()[0] == 2


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "pw.sqlite"
    connect(path).conn.close()
    with sqlite3.connect(path) as db:
        db.execute("update meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StorageError, match="newer pollwatch"):
        Store(path)


def test_a_foreign_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("create table customers (id int)")
    with pytest.raises(StorageError, match="not a pollwatch database"):
        Store(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="not a usable SQLite database"):
        Store(path)


def test_a_locked_database_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("pollwatch.store.database.BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "pw.sqlite"
    connect(path).conn.close()
    errors: list[str] = []
    locker = sqlite3.connect(path, timeout=0)
    locker.execute("begin exclusive")
    store = Store(path, on_error=errors.append).start()
    try:
        run_job(store)
        time.sleep(1.5)
        assert len(errors) == 1 and "cannot write" in errors[0]
    finally:
        locker.rollback()
        locker.close()
        store.close()
    assert count(path, "polls") == 5


def test_sensitive_query_parameters_are_redacted_at_rest(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path) as store:
        traffic = Traffic(Tracker(key_prefix="s/"))
        store.submit(traffic.create("/api/exports/e-1?sig=SIGSECRET&api-version=2"))
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"SIGSECRET" not in raw and b"api-version=2" in raw


def test_session_carries_label_and_settings(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path, Session(label="checkout bug", settings={"stuck_after": 10})):
        pass
    with sqlite3.connect(path) as db:
        label, settings = db.execute("select label, settings from sessions").fetchone()
    assert label == "checkout bug" and json.loads(settings) == {"stuck_after": 10, "writer": {
        "host": socket.gethostname(), "pid": os.getpid()}}  # the writer: is a session without an end still open?


def test_a_database_locked_at_start_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr("pollwatch.store.database.BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "locked.sqlite"
    locker = sqlite3.connect(path)
    locker.execute("create table meta (key text)")
    locker.execute("begin exclusive")
    try:
        with pytest.raises(StorageError, match="lock"):
            Store(path)
    finally:
        locker.rollback()
        locker.close()


def test_lone_surrogates_do_not_stop_the_writer(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path) as store:
        traffic = Traffic(Tracker(key_prefix="s/"))
        store.submit(traffic.create())
        store.submit(traffic.poll(None, body='{"status": "\\ud800weird"}'))
        store.submit(traffic.exchange("GET", "/api/exports/e-1?x=\udcff", 200, body={"status": "running"}))
        store.submit(traffic.poll("succeeded"))
    assert count(path, "polls") == 4 and store.write_errors == 0


def test_rows_made_from_core_records_fill_every_column_of_their_table():
    from pollwatch.store.database import RECORD_TABLES, WRITE_SQL
    from pollwatch.store.rows import job_row, poll_row, transition_row

    update = Traffic(Tracker()).create()
    made = {"jobs": job_row(update.job, "s"), "polls": poll_row(update.poll, "s"),
            "transitions": transition_row(update.transitions[0], "s")}
    assert set(made) == RECORD_TABLES
    for table, row in made.items():
        assert set(WRITE_SQL[table][1]) <= set(row), table


def test_a_nested_value_is_stored_as_its_own_json_whatever_was_stored_before():
    from pollwatch.store.rows import json_cell

    assert json_cell("ids", {"a": "1"}) == '{"a": "1"}'
    assert json_cell("ids", {"a": 1}) == '{"a": 1}'
    assert json_cell("ids", {"a": True}) == '{"a": true}'  # True == 1 as a cache key, not as JSON
    assert json_cell("ids", {"a": 1.0}) == '{"a": 1.0}'
    assert json_cell("states", ["queued", "running"]) == '["queued", "running"]'
    assert json_cell("ids", {"b": "x", "a": "y"}) == '{"a": "y", "b": "x"}'
    assert json_cell("ids", {}) == "{}" and json_cell("states", []) == "[]"


def test_a_nested_value_of_any_mapping_or_size_is_stored_as_plain_json():
    from collections import defaultdict

    from pollwatch.store.rows import _json, _json_kept, json_cell

    assert json_cell("ids", defaultdict(str, {"a": "1"})) == '{"a": "1"}'
    kept = _json_kept.cache_info().currsize
    huge = {"x-request-id": "r" * 100_000}
    assert json_cell("ids", huge) == _json("ids", huge)
    assert _json_kept.cache_info().currsize == kept  # a huge header is not kept once its row is written
