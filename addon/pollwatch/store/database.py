"""SQLite persistence of sessions, jobs, polls, transitions, findings and origin checks (through
sqlite-utils).

The proxy never waits on disk: `Store.submit` only queues; one writer thread batches rows into a
transaction at least once a second. Only allow-listed headers reach the database (the core
already picked them); bodies are stored only when the user asks for them.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic import BaseModel, Field

from pollwatch.errors import StorageError, first_line
from pollwatch import __version__
from pollwatch.core.findings import Finding
from pollwatch.core.records import JobSnapshot, Update
from pollwatch.core.verification import CheckRecord
from pollwatch.core.worker import WorkerEvent
from pollwatch.store.rows import finding_row, job_row, jsonable, poll_row, transition_row, worker_event_row
from pollwatch.store.views import ensure_views

SCHEMA_VERSION = 1
FLUSH_INTERVAL = 0.5
BUSY_TIMEOUT_MS = 5000
BACKLOG_LIMIT = 20_000
"""Rows kept for retrying while the database cannot be written; beyond them rows are dropped and
counted (a proxy left running on a full disk must not grow without end)."""

log = logging.getLogger("pollwatch")


class Session(BaseModel):
    id: str = Field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    source: str = "live"
    label: str | None = None
    version: str = __version__
    settings: dict[str, Any] = Field(default_factory=dict)


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) a pollwatch database and check its schema version."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db = sqlite_utils.Database(conn)
        tables = set(db.table_names())
    except sqlite3.OperationalError as exc:
        raise StorageError(f"{path}: cannot open the database ({exc}); is another program holding a lock on it?") from exc
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a usable SQLite database ({exc})") from exc
    if tables and "meta" not in tables:
        raise StorageError(f"{path}: not a pollwatch database (it has tables {', '.join(sorted(tables)[:5])})")
    if "meta" in tables:
        row = conn.execute("select value from meta where key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StorageError(f"{path}: written by a newer pollwatch (schema {version}, this one reads "
                               f"up to {SCHEMA_VERSION}); upgrade pollwatch to use it")
        if version < 1:
            raise StorageError(f"{path}: pollwatch schema version missing; not a pollwatch database")
        _add_missing_tables(db, tables)
        ensure_views(conn)
        return db
    _create_schema(db)
    ensure_views(db.conn)
    return db


COLUMNS: dict[str, dict[str, type]] = {
    "sessions": {"id": str, "started_at": float, "ended_at": float, "source": str, "label": str,
                 "version": str, "settings": str},
    "jobs": {
        "key": str, "session_id": str, "job_id": str, "status_url": str, "host": str, "created_at": float,
        "created_by": str, "create_method": str, "create_url": str, "create_status": int,
        "create_flow_id": str, "reference_source": str, "operation_ids": str, "states": str,
        "last_state": str, "terminal_state": str, "terminal_at": float, "polls": int,
        "polls_after_terminal": int, "last_poll_at": float, "updated_at": float,
    },
    "polls": {
        "id": int, "session_id": str, "job_key": str, "flow_id": str, "kind": str, "matched_by": str,
        "method": str, "url": str, "status": int, "request_ts": float, "response_ts": float,
        "raw_state": str, "state": str, "state_source": str, "cache_verdict": str,
        "freshness_lifetime": float, "served_by": str, "response_cache_headers": str,
        "request_cache_headers": str, "retry_after": float, "ids": str, "body_sha256": str,
        "client": str, "body": str,
    },
    "transitions": {"id": int, "session_id": str, "job_key": str, "flow_id": str, "from_state": str,
                    "to_state": str, "ts": float},
    "findings": {"key": str, "session_id": str, "job_key": str, "job_id": str, "flow_id": str, "code": str,
                 "severity": str, "ts": float, "message": str, "evidence": str, "count": int},
    "checks": {"id": int, "session_id": str, "job_key": str, "flow_id": str, "reason": str, "method": str,
               "url": str, "sent_at": float, "received_at": float, "status": int, "client_state": str,
               "client_etag": str, "origin_state": str, "origin_etag": str, "result": str, "detail": str},
    "worker_events": {"id": int, "session_id": str, "job_key": str, "ts": float, "job_id": str, "operation_ids": str,
                      "trace_id": str, "state_word": str, "state": str, "source": str, "message": str},
}
"""`checks` (pollwatch's own origin checks, `pollwatch_verify`) and `worker_events` (worker log
lines, `pollwatch worker-log`; `job_key` is the job they joined, set by each recompute) came
after schema version 1; they are added to older databases when they are opened, so the version stays 1 and older pollwatch
versions still open newer files."""
SQL_TYPES = {str: "text", int: "integer", float: "float"}
PRIMARY_KEYS = {"sessions": "id", "jobs": "key", "polls": "id", "transitions": "id", "findings": "key",
                "checks": "id", "worker_events": "id"}
FOREIGN_KEYS = {
    "jobs": [("session_id", "sessions", "id")],
    "polls": [("session_id", "sessions", "id"), ("job_key", "jobs", "key")],
    "transitions": [("session_id", "sessions", "id"), ("job_key", "jobs", "key")],
    "findings": [("session_id", "sessions", "id"), ("job_key", "jobs", "key")],
    "checks": [("session_id", "sessions", "id"), ("job_key", "jobs", "key")],
    "worker_events": [("session_id", "sessions", "id")],
}
INDEXES = {"jobs": [["session_id"], ["job_id"]], "polls": [["job_key", "response_ts"], ["session_id"]],
           "transitions": [["job_key", "ts"]], "findings": [["job_key"], ["code"], ["session_id", "ts"]],
           "checks": [["job_key", "sent_at"], ["session_id"]],
           "worker_events": [["job_key", "ts"], ["job_id"], ["session_id"]]}


def check_writable(path: str | Path) -> None:
    """Fail now, in one line, when rows could not be written (a read-only file or folder, a full
    disk): a writer that only finds out in its thread would lose everything quietly. A locked
    database is writable, later: the writer retries."""
    db = None
    try:
        db = connect(path)
        with db.conn:
            db.conn.execute("insert or replace into meta (key, value) values ('write-check', '')")
            db.conn.execute("delete from meta where key = 'write-check'")
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise StorageError(f"{path}: cannot write to the database ({first_line(exc)})") from exc
    finally:
        if db is not None:
            db.conn.close()


def remove_database(path: str | Path) -> None:
    """A database file and its journal, WAL and shared-memory files, gone (those that exist)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _create_schema(db: sqlite_utils.Database) -> None:
    db.enable_wal()
    with db.conn:
        db["meta"].create({"key": str, "value": str}, pk="key")
        db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})
        for table in COLUMNS:
            _create_table(db, table)


def _create_table(db: sqlite_utils.Database, table: str) -> None:
    db[table].create(COLUMNS[table], pk=PRIMARY_KEYS[table], foreign_keys=FOREIGN_KEYS.get(table, []),
                     if_not_exists=True)
    for index in INDEXES.get(table, []):
        db[table].create_index(index, if_not_exists=True)


def _add_missing_tables(db: sqlite_utils.Database, tables: set[str]) -> None:
    """Tables a later pollwatch added (`checks`), created in a database written before them; a
    read-only file gets empty temporary ones, so readers need not tell the two apart."""
    missing = [table for table in COLUMNS if table not in tables]
    if not missing:
        return
    try:
        with db.conn:
            for table in missing:
                _create_table(db, table)
    except sqlite3.OperationalError:  # read-only: an empty stand-in for this connection only
        for table in missing:
            db.conn.execute(f"create temp table if not exists [{table}] ({column_sql(table)})")


def column_sql(table: str) -> str:
    pk = PRIMARY_KEYS[table]
    return ", ".join(f"[{name}] {SQL_TYPES[kind]}{' primary key' if name == pk else ''}"
                     for name, kind in COLUMNS[table].items())


def _write_sql(table: str) -> tuple[str, list[str]]:
    """INSERT (or upsert on the primary key) with named parameters: prepared once, run per batch.
    Cheaper than sqlite-utils' per-call introspection on the writer's busy path."""
    pk = PRIMARY_KEYS[table]
    autoincrement = COLUMNS[table][pk] is int
    columns = [c for c in COLUMNS[table] if not (autoincrement and c == pk)]
    sql = f"insert into {table} ({', '.join(columns)}) values ({', '.join(':' + c for c in columns)})"
    if not autoincrement:
        sql += f" on conflict({pk}) do update set " + ", ".join(f"{c} = excluded.{c}" for c in columns if c != pk)
    return sql, columns


WRITE_SQL = {table: _write_sql(table) for table in COLUMNS}
RECORD_TABLES = frozenset({"jobs", "polls", "transitions"})
"""Tables whose rows the writer makes from the core's records (rows.py), with a value for every
column (a record's fields and the session): handed to SQLite as they are."""


class _Batch:
    """Rows waiting for the next transaction; later snapshots of a job (made rows when written) replace earlier."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobSnapshot] = {}
        self.polls: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self.findings: dict[str, dict[str, Any]] = {}
        self.checks: list[dict[str, Any]] = []
        self.worker_events: list[dict[str, Any]] = []
        self.session: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.rows() or self.session)

    def rows(self) -> int:
        return (len(self.jobs) + len(self.polls) + len(self.transitions) + len(self.findings) + len(self.checks)
                + len(self.worker_events))


class Store:
    """Owns the database file for one session; thread-safe `submit`, background writes."""

    lost_in_process = 0
    """Rows every store in this process had to drop: `pollwatch run` exits non-zero on any."""

    def __init__(self, path: str | Path, session: Session | None = None, *,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.session = session or Session()
        self._on_error = on_error or (lambda message: log.error(message))
        self._pending: deque[tuple[str, Any]] = deque()  # appends are atomic; no wake-up per row
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error_reported = False
        self.write_errors = 0
        self.rows_written = 0
        self.rows_lost = 0
        self.first_error: str | None = None
        check_writable(self.path)  # fail now, with a clear message, not in the writer thread

    # --- producer side (any thread, never blocks) ---------------------------------------------

    def start(self) -> "Store":
        self.session.settings["writer"] = {"host": socket.gethostname(), "pid": os.getpid()}  # see session_end
        self._pending.append(("session", self.session.model_dump()))
        self._thread = threading.Thread(target=self._run, name="pollwatch-writer", daemon=True)
        self._thread.start()
        return self

    def submit(self, update: Update) -> None:
        self._pending.extend(("update", each) for each in update.all())

    def submit_findings(self, findings: Iterable[Finding]) -> None:
        self._pending.extend(("finding", finding) for finding in findings)

    def submit_check(self, check: CheckRecord) -> None:
        self._pending.append(("check", check))

    def submit_worker_events(self, events: Iterable[WorkerEvent]) -> None:
        self._pending.extend(("worker", event) for event in events)

    def close(self) -> None:
        """Write everything queued, mark the session ended, stop the writer."""
        if self._thread is None:
            return
        self.session.ended_at = time.time()
        self._pending.append(("session", self.session.model_dump()))
        self._stop.set()
        self._thread.join(timeout=30)
        self._thread = None
        Store.lost_in_process += self.rows_lost

    def __enter__(self) -> "Store":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        """Every FLUSH_INTERVAL: take all pending rows, write them in one transaction. Sleeping
        between flushes (instead of waking for each row) keeps the proxy's CPU for traffic."""
        try:
            db: sqlite_utils.Database | None = connect(self.path)
        except StorageError:
            db = None  # every write below fails, and is reported and counted as such
        batch = _Batch()
        while True:
            stopping = self._stop.wait(FLUSH_INTERVAL)
            while self._pending:
                self._add(batch, *self._pending.popleft())
            if batch and self._write(db, batch):
                batch = _Batch()
            elif batch.rows() > BACKLOG_LIMIT:
                batch = self._drop(batch)
            if stopping:
                break
        for _ in range(10):  # last chance: a locked database gets a few more tries before giving up
            if not batch or self._write(db, batch):
                break
            time.sleep(0.5)
        else:
            self._drop(batch)
        if db is not None:
            db.conn.close()

    def _drop(self, batch: _Batch) -> _Batch:
        """Give up on a batch that cannot be written: count its rows, keep only the session row."""
        self.rows_lost, kept = self.rows_lost + batch.rows(), _Batch()
        kept.session = batch.session
        return kept

    def _add(self, batch: _Batch, kind: str, item: Any) -> None:
        sid = self.session.id
        if kind == "session":
            batch.session = jsonable(item.items())
        elif kind == "finding":
            batch.findings[item.key] = finding_row(item, sid)
        elif kind == "check":
            batch.checks.append(jsonable(item.model_dump().items()) | {"session_id": sid})
        elif kind == "worker":
            batch.worker_events.append(worker_event_row(item, sid))
        else:
            update: Update = item
            if update.job is not None:
                batch.jobs[update.job.key] = update.job
            if update.poll is not None:
                batch.polls.append(poll_row(update.poll, sid))
            batch.transitions += [transition_row(t, sid) for t in update.transitions]
            for finding in update.findings:
                batch.findings[finding.key] = finding_row(finding, sid)

    def _write(self, db: sqlite_utils.Database | None, batch: _Batch) -> bool:
        try:
            if db is None:
                raise StorageError("cannot open the database")
            with db.conn:
                for table, rows in (("sessions", [batch.session] if batch.session else []),
                                    ("jobs", [job_row(j, self.session.id) for j in batch.jobs.values()]),
                                    ("polls", batch.polls), ("transitions", batch.transitions),
                                    ("findings", batch.findings.values()), ("checks", batch.checks),
                                    ("worker_events", batch.worker_events)):
                    sql, columns = WRITE_SQL[table]
                    complete = table in RECORD_TABLES  # their rows name every column already
                    db.conn.executemany(sql, rows if complete else [{c: row.get(c) for c in columns} for row in rows])
        except Exception as exc:  # noqa: BLE001 - the writer must outlive any bad row or locked file
            self.write_errors += 1
            if not self._error_reported:
                self._error_reported = True
                self.first_error = first_line(exc)
                self._on_error(f"[pollwatch] cannot write to {self.path}: {self.first_error}; retrying, and "
                               f"counting the rows dropped beyond {BACKLOG_LIMIT} (reported at shutdown)")
            return False
        self.rows_written += batch.rows()
        return True
