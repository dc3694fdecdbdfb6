"""The view's answers, from the tracker's copies (the board) and the database together.

The database holds every job and finding of the session; the board holds what the tracker knows
this moment, up to one writer flush ahead. A job the database does not have yet is shown from
the board, newest first, ahead of the database's page; a job both have shows the board's newer
state and the database's finding counts. Without a database (`pollwatch_db` empty) the board is
all there is. Everything here runs in the view's thread, never on the event loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from typing import Any

from pollwatch.core.findings import Finding
from pollwatch.core.redact import safe_value
from pollwatch.errors import StorageError, first_line
from pollwatch.live.board import MAX_JOBS, Board, Seen
from pollwatch.live.reads import facets, job_in_full, jobs_page, updated_at, written
from pollwatch.live.rows import Filters, codes_of, explanations, finding_row, fresher, job_row, unique
from pollwatch.store.query import SEVERITIES, count_findings, list_findings
from pollwatch.store.reading import open_database

NO_DATABASE = "no database (pollwatch_db is empty): polls and timelines are not kept"
NOT_WRITTEN = "not in the database yet (the writer flushes about twice a second)"
BEHIND = "the proxy has seen newer exchanges of this job; they are written within a second"


class LiveData:
    """Jobs, one job and findings of the proxy's session, as the JSON API returns them."""

    def __init__(self, board: Board, session_id: str, db: str | None = None) -> None:
        self.board = board
        self.session_id = session_id
        self.db = db
        """The database file (the addon sets it from `pollwatch_db`); None or empty for none."""
        self._written: set[str] = set()  # keys known to be in the database: never asked again
        self._written_in: str | None = None
        self._lock = threading.Lock()

    def _open(self) -> tuple[sqlite3.Connection | None, str | None]:
        """A read-only connection inside a read transaction, or None and why not."""
        if not self.db:
            return None, NO_DATABASE
        try:
            conn = open_database(self.db)
        except (StorageError, sqlite3.Error) as exc:
            return None, first_line(exc)
        conn.execute("begin")  # one snapshot for every query of this request
        return conn, None

    def _meta(self, problem: str | None, now: float) -> dict[str, Any]:
        return {"session_id": self.session_id, "database": self.db or None, "database_problem": problem,
                "generated_at": now}

    def jobs(self, filters: Filters, offset: int, limit: int) -> dict[str, Any]:
        """The session's jobs matching `filters`, newest first, `limit` of them after `offset`."""
        now = time.time()
        seen = self.board.all()
        conn, problem = self._open()
        try:
            fresh = self._unwritten(conn, seen)
            matching = sorted((s for s in fresh if filters.matches(s)), key=lambda s: (s.job.created_at, s.job.key),
                              reverse=True)
            shown = [job_row(s, self.session_id, now) for s in matching[offset:offset + limit]]
            total, rows, stamps, counts = 0, [], {}, {}
            if conn is not None:
                total, rows, stamps = jobs_page(conn, self.session_id, filters, max(offset - len(matching), 0),
                                                limit - len(shown))
                counts = facets(conn, self.session_id)
        finally:
            if conn is not None:
                conn.close()
        page = shown + [self._fresher(row, stamps.get(row["key"]), now) for row in rows]
        return self._meta(problem, now) | {
            "total": len(matching) + total, "offset": offset, "limit": limit, "jobs": page,
            "facets": _with_fresh(counts, fresh), "remembered": len(seen),
            "explanations": explanations([{"code": code} for row in page for code in row["codes"]]),
        }

    def _fresher(self, row: dict[str, Any], stamp: float | None, now: float) -> dict[str, Any]:
        seen = self.board.get(row["key"])
        if seen is None or seen.job.updated_at < (stamp or 0.0):
            return row
        return fresher(row, seen, self.session_id, now)

    def _unwritten(self, conn: sqlite3.Connection | None, seen: list[Seen]) -> list[Seen]:
        """The board's jobs the database does not hold (all of them without a database)."""
        with self._lock:
            if self._written_in != self.db:
                self._written, self._written_in = set(), self.db
            pending = [s for s in seen if s.job.key not in self._written]
            if conn is not None and pending:
                self._written |= written(conn, [s.job.key for s in pending])
                if len(self._written) > 2 * MAX_JOBS:  # keep only what the board can still ask about
                    self._written &= {s.job.key for s in seen}
            return [s for s in pending if s.job.key not in self._written]

    def job(self, key: str) -> dict[str, Any] | None:
        """One job in full (`pollwatch show --format json` and the view's additions), None if
        neither the database nor the board knows `key`. Read from the database when it has the
        job (`pending` says when the tracker is ahead), else what the tracker knows."""
        seen = self.board.get(key)
        conn, problem = self._open()
        try:
            stamp = updated_at(conn, key) if conn is not None else None
            if conn is not None and stamp is not None:  # all from one read: the support block says what
                behind = seen is not None and seen.job.updated_at > stamp  # the timeline draws
                return job_in_full(conn, key) | {"pending": BEHIND if behind else None}
        finally:
            if conn is not None:
                conn.close()
        if seen is None:
            return None
        findings = [finding_row(f, self.session_id) for f in unique(seen.findings)]
        return {"job": job_row(seen, self.session_id), "polls": [], "transitions": [], "findings": findings,
                "support": None, "support_text": None, "timeline_svg": None,
                "explanations": explanations(findings), "pending": problem or NOT_WRITTEN}

    def findings(self, *, code: str | None, severity: str | None, job: str | None, offset: int,
                 limit: int) -> dict[str, Any]:
        """The session's findings, newest first (`pollwatch warnings --format json` rows; the
        options mean what the command's options of those names mean)."""
        now = time.time()
        conn, problem = self._open()
        try:
            if conn is not None:
                total = count_findings(conn, self.session_id, code=code, severity=severity, job=job)
                page = list_findings(conn, self.session_id, code=code, severity=severity, job=job, limit=limit,
                                     skip=offset)[::-1]
            else:
                found = [f for s in self.board.all() for f in unique(s.findings) if _matches(f, code, severity, job)]
                found.sort(key=lambda f: (f.ts, f.key), reverse=True)
                total, page = len(found), [finding_row(f, self.session_id) for f in found[offset:offset + limit]]
        finally:
            if conn is not None:
                conn.close()
        return self._meta(problem, now) | {"total": total, "offset": offset, "limit": limit, "findings": page,
                                           "explanations": explanations(page)}


def _matches(finding: Finding, code: str | None, severity: str | None, job: str | None) -> bool:
    """`list_findings`' filters, for the tracker's findings when there is no database."""
    return ((code is None or finding.code == code)
            and (severity is None or finding.severity.rank >= SEVERITIES.index(severity))
            and (job is None or any((value or "").startswith(job) for value in (finding.job_id, finding.job_key))))


def _with_fresh(counts: dict[str, dict[str, int]], fresh: list[Seen]) -> dict[str, dict[str, int]]:
    """The database's filter values plus those of jobs only the board has."""
    states = Counter(counts.get("states", {})) + Counter(s.job.last_state for s in fresh if s.job.last_state)
    hosts = Counter(counts.get("hosts", {})) + Counter(safe_value(s.job.host, "host") for s in fresh if s.job.host)
    codes = Counter(counts.get("codes", {})) + Counter(c for s in fresh for c in codes_of(s))
    return {"states": dict(states.most_common()), "codes": dict(codes.most_common()), "hosts": dict(hosts.most_common())}
