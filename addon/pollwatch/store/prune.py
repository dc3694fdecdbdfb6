"""`pollwatch prune`: forget old capture sessions and give the disk space back.

A session's age is its last sign of life: its end, its start, and for live captures the latest
job update (offline analyses carry the recording's own, possibly old, timestamps), so a long
capture that is still being written is not cut from under a running proxy.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from pydantic import BaseModel

from pollwatch.errors import PruneError
from pollwatch.store.database import COLUMNS, StorageError, connect

CHILD_TABLES = tuple(t for t in reversed(COLUMNS) if "session_id" in COLUMNS[t])
"""Every table whose rows belong to a session, children first (findings ... jobs)."""
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}



class PrunedSession(BaseModel):
    id: str
    label: str | None
    started_at: float
    last_seen: float


class PruneReport(BaseModel):
    db: str
    dry_run: bool
    sessions: list[PrunedSession]
    rows: dict[str, int]
    bytes_before: int
    bytes_after: int

    def line(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        rows = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        size = "" if self.dry_run else f"; {_size(self.bytes_before)} -> {_size(self.bytes_after)}"
        return f"{self.db}: {verb} {len(self.sessions)} session(s) ({rows}){size}"


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` (or plain seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise PruneError(f"cannot read age {text!r}; use a number with s, m, h, d or w (e.g. 30d)")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def prune(db: str | Path, *, older_than: float | None = None, session: str | None = None, dry_run: bool = False,
          now: float | None = None) -> PruneReport:
    """Delete the chosen sessions with every row that belongs to them, then VACUUM."""
    path = Path(db)
    if not path.is_file():
        raise PruneError(f"{path}: no such database")
    if older_than is None and session is None:
        raise PruneError("say what to prune: --older-than AGE and/or --session ID")
    database = connect(path)  # refuses newer-schema and non-pollwatch files with StorageError
    conn = database.conn
    try:
        before = _disk_size(path)
        chosen = _choose(conn, older_than, session, time.time() if now is None else now)
        if session is not None and not chosen and not _exists(conn, session):
            raise PruneError(f"{path}: no session {session!r}")
        ids = [s.id for s in chosen]
        rows = _count(conn, ids)
        if not dry_run and ids:
            _delete(conn, ids)
            _reclaim(conn)
        return PruneReport(db=str(path), dry_run=dry_run, sessions=chosen, rows=rows, bytes_before=before,
                           bytes_after=_disk_size(path))
    except sqlite3.OperationalError as exc:
        raise StorageError(f"{path}: cannot prune ({exc}); is a proxy still writing to it?") from exc
    finally:
        conn.close()


def _choose(conn: sqlite3.Connection, older_than: float | None, session: str | None, now: float) -> list[PrunedSession]:
    rows = conn.execute(
        """select s.id, s.label, s.started_at,
                  max(s.started_at, coalesce(s.ended_at, 0),
                      case when s.source = 'live' then coalesce(
                          (select max(j.updated_at) from jobs j where j.session_id = s.id), 0) else 0 end) as last_seen
           from sessions s where (:session is null or s.id = :session) order by s.started_at""",
        {"session": session}).fetchall()
    cutoff = None if older_than is None else now - older_than
    return [PrunedSession(id=r[0], label=r[1], started_at=r[2], last_seen=r[3]) for r in rows
            if cutoff is None or r[3] < cutoff]


def _exists(conn: sqlite3.Connection, session: str) -> bool:
    return conn.execute("select 1 from sessions where id = ?", (session,)).fetchone() is not None


def _count(conn: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
    marks = ",".join("?" * len(ids))
    counts = {table: conn.execute(f"select count(*) from {table} where session_id in ({marks})", ids).fetchone()[0]
              if ids else 0 for table in CHILD_TABLES}
    return {"sessions": len(ids), **dict(reversed(counts.items()))}


def _delete(conn: sqlite3.Connection, ids: list[str]) -> None:
    """One transaction: a crash leaves every session whole or gone."""
    marks = ",".join("?" * len(ids))
    with conn:
        for table in CHILD_TABLES:
            conn.execute(f"delete from {table} where session_id in ({marks})", ids)
        conn.execute(f"delete from sessions where id in ({marks})", ids)


def _reclaim(conn: sqlite3.Connection) -> None:
    """Fold the WAL into the main file, rewrite it compactly, and empty the WAL again."""
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.execute("vacuum")
    conn.execute("pragma wal_checkpoint(truncate)")


def _disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
