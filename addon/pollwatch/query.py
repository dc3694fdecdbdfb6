"""Read-side of the database: the rows behind `pollwatch jobs` and `pollwatch warnings`.

The JSON shapes returned here are contracts that scripts rely on; add fields, never rename.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .storage import StorageError, connect


def open_database(path: str | Path) -> sqlite3.Connection:
    """A read connection to an existing pollwatch database, or a one-line StorageError."""
    if not Path(path).exists():
        raise StorageError(f"{path}: no such database (run `pollwatch run --db {path}` or `pollwatch demo` first)")
    conn = connect(path).conn
    conn.row_factory = sqlite3.Row
    return conn


def _session_clause(session: str | None, column: str = "session_id") -> tuple[str, list[Any]]:
    return (f" and {column} = ?", [session]) if session else ("", [])


def list_jobs(conn: sqlite3.Connection, session: str | None = None) -> list[dict[str, Any]]:
    where, args = _session_clause(session, "j.session_id")
    rows = conn.execute(f"""
        select j.*, (select count(*) from findings f where f.job_key = j.key) as findings
        from jobs j where 1 = 1{where} order by j.created_at, j.key""", args).fetchall()
    return [{
        "job_id": r["job_id"], "status_url": r["status_url"], "host": r["host"], "created_at": r["created_at"],
        "states": json.loads(r["states"] or "[]"), "terminal_state": r["terminal_state"], "polls": r["polls"],
        "last_state": r["last_state"], "polls_after_terminal": r["polls_after_terminal"],
        "created_by": r["created_by"], "findings": r["findings"], "session_id": r["session_id"], "key": r["key"],
    } for r in rows]


def list_findings(conn: sqlite3.Connection, session: str | None = None) -> list[dict[str, Any]]:
    where, args = _session_clause(session)
    rows = conn.execute(f"select * from findings where 1 = 1{where} order by ts, key", args).fetchall()
    return [{
        "code": r["code"], "severity": r["severity"], "job_id": r["job_id"], "ts": r["ts"], "message": r["message"],
        "count": r["count"], "flow_id": r["flow_id"], "evidence": json.loads(r["evidence"] or "{}"),
        "session_id": r["session_id"], "job_key": r["job_key"],
    } for r in rows]
