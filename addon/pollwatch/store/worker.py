"""Worker events in the database: ingesting a run of them, and recomputing the worker findings.

`recompute` is the offline half of `WorkerJudge`: it replays every stored poll, in arrival
order, against every stored worker event, joins each event to its job (`worker_events.job_key`)
and replaces all findings keyed `:worker`. `pollwatch worker-log`, `pollwatch analyze` and the
live proxy's shutdown all end with it, so the order things were ingested in does not matter.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pollwatch.core.findings import Finding
from pollwatch.core.records import JobSnapshot, PollRecord, validated
from pollwatch.core.worker import WorkerEvent, WorkerSettings
from pollwatch.core.worker_rules import WORKER_SCOPE, WorkerJudge
from pollwatch.errors import StorageError, first_line
from pollwatch.store.database import WRITE_SQL, Session, connect
from pollwatch.store.rows import finding_row, jsonable, worker_event_row

GRACE_SETTING = "worker_grace"
"""Session setting that records the grace a run judged with; the newest one is used."""


class Recomputed(BaseModel):
    events: int
    linked: int
    findings: dict[str, int]


class Ingested(BaseModel):
    session_id: str
    db: str
    events: int
    """Events this run stored (lines an earlier run of the same file stored are skipped)."""
    linked: int
    """Of those, the ones that joined a job."""
    duplicates: int = 0
    findings: dict[str, int]


def ingest(db_path: str | Path, events: list[WorkerEvent], *, settings: WorkerSettings, label: str,
           run_settings: dict[str, Any] | None = None) -> Ingested:
    """Store `events` as one worker-log run (a session of their own) and recompute, all in one
    transaction: on any error nothing is written. An event already stored (same line of the same
    file, same content) is skipped, so ingesting a file twice changes nothing."""
    session = Session(source="worker-log", label=label, ended_at=time.time(),
                      settings={GRACE_SETTING: settings.grace, **(run_settings or {})})
    with _storage_errors(db_path):
        db = connect(db_path)
        try:
            with db.conn:
                rows = _new_rows(db.conn, [worker_event_row(e, session.id) for e in events])
                _insert(db.conn, "sessions", [jsonable(session.model_dump().items())])
                _insert(db.conn, "worker_events", rows)
                result = recompute(db.conn, settings)
                (linked,) = db.conn.execute("select count(*) from worker_events where session_id = ? and job_key "
                                            "is not null", (session.id,)).fetchone()
        finally:
            db.conn.close()
    return Ingested(session_id=session.id, db=str(db_path), events=len(rows), linked=linked,
                    duplicates=len(events) - len(rows), findings=result.findings)


_SAME = ("source", "ts", "job_id", "operation_ids", "state_word", "message")
"""What makes a stored row the same event: its line, and what the line said."""


def _new_rows(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` without those already stored (or repeated within `rows`)."""
    seen = set(conn.execute(f"select {', '.join(_SAME)} from worker_events"))
    fresh = []
    for row in rows:
        key = tuple(row.get(c) for c in _SAME)
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    return fresh


@contextmanager
def _storage_errors(db_path: str | Path) -> Iterator[None]:
    """A locked or broken database as one StorageError line, not a traceback."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{db_path}: cannot write the worker events ({first_line(exc)})") from exc


def recompute_file(db_path: str | Path) -> Recomputed | None:
    """Recompute in a database that holds worker events (None when it holds none)."""
    with _storage_errors(db_path):
        db = connect(db_path)
        try:
            if not db.conn.execute("select 1 from worker_events limit 1").fetchone():
                return None
            with db.conn:
                return recompute(db.conn, stored_settings(db.conn))
        finally:
            db.conn.close()


def stored_settings(conn: sqlite3.Connection) -> WorkerSettings:
    """The grace of the newest run that recorded one, else the default."""
    for (raw,) in conn.execute("select settings from sessions order by started_at desc"):
        value = json.loads(raw or "{}").get(GRACE_SETTING)
        if value is not None:
            return WorkerSettings(grace=float(value))
    return WorkerSettings()


def recompute(conn: sqlite3.Connection, settings: WorkerSettings) -> Recomputed:
    """Join every worker event and replace every worker finding (inside the caller's transaction)."""
    conn.row_factory = sqlite3.Row
    judge = WorkerJudge(settings)
    stored = [(r["id"], r["session_id"], _event(r)) for r in conn.execute("select * from worker_events order by ts, id")]
    judge.add_events(e for _, _, e in stored)
    jobs = {r["key"]: (r["session_id"], _job(r)) for r in conn.execute("select * from jobs")}
    polls = [_poll(r) for r in conn.execute("select * from polls order by response_ts, id")]
    for _, job in jobs.values():
        judge.note_job(job)
    for poll in polls:
        if poll.job_key in jobs:
            judge.join.add_ids(poll.job_key, poll.ids.values())
    latest: dict[str, tuple[str, Finding]] = {}
    for poll in polls:
        if poll.job_key in jobs:
            session_id, job = jobs[poll.job_key]
            latest |= {f.key: (session_id, f) for f in judge.judge(job, poll)}
    runs: dict[str, list[WorkerEvent]] = {}
    for _, session_id, event in stored:
        runs.setdefault(session_id, []).append(event)
    for session_id, events in runs.items():
        unlinked = judge.unlinked(session_id, events, max(e.ts for e in events))
        if unlinked is not None:
            latest[unlinked.key] = (session_id, unlinked)
    keys = [(judge.join.job_of(event), row_id) for row_id, _, event in stored]
    conn.executemany("update worker_events set job_key = ? where id = ?", keys)
    conn.execute("delete from findings where key like ?", (f"%:{WORKER_SCOPE}",))
    _insert(conn, "findings", [finding_row(f, sid) for sid, f in latest.values()])
    counts: dict[str, int] = {}
    for _, f in latest.values():
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    return Recomputed(events=len(stored), linked=sum(1 for k, _ in keys if k), findings=counts)


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    sql, columns = WRITE_SQL[table]
    conn.executemany(sql, [{c: row.get(c) for c in columns} for row in rows])


def _decoded(row: sqlite3.Row, *json_columns: str) -> dict[str, Any]:
    out = dict(row)
    for column in json_columns:
        out[column] = json.loads(out[column]) if out.get(column) else {}
    return out


def _event(row: sqlite3.Row) -> WorkerEvent:
    data = _decoded(row)
    data["operation_ids"] = json.loads(data["operation_ids"] or "[]")
    return WorkerEvent.model_validate({k: data[k] for k in WorkerEvent.model_fields})


def _job(row: sqlite3.Row) -> JobSnapshot:
    data = _decoded(row, "operation_ids")
    data["states"] = json.loads(row["states"] or "[]")
    return validated(JobSnapshot, data)


def _poll(row: sqlite3.Row) -> PollRecord:
    return validated(PollRecord, _decoded(row, "response_cache_headers", "request_cache_headers", "ids"))
