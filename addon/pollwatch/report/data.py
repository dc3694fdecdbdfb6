"""What the report reads from a pollwatch database, and which of the jobs it draws in full.

Kept apart from the markup so the SQL and the choice of jobs read (and change) on their own. The
names of states and severities come from the core, so the report spells none of them again; the
helpers at the end map whatever the database holds onto those names, for the page and the timelines.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from pollwatch.core.findings import CATALOGUE, Severity
from pollwatch.core.states import State
from pollwatch.errors import ReportError
from pollwatch.store.query import list_worker_events, polls_behind_worker, worker_end
from pollwatch.store.reading import collector_paused, plain_rows

STATES = tuple(s.value for s in State)
"""Canonical states in lifecycle order (queued ... expired, unknown)."""
OUTCOMES = (*(s.value for s in State if s.terminal), "non-terminal")
"""How a job ended: its terminal state, or not at all."""
SEVERITIES_WORST_FIRST = tuple(s.value for s in sorted(Severity, key=attrgetter("rank"), reverse=True))
"""error, warning, info: the order the report lists findings in."""
CACHED_BY = frozenset({"shared-cache", "client-cache", "browser-cache"})
"""`served_by` values meaning the client did not get a fresh answer from the origin."""
CACHEABLE = frozenset({"fresh", "heuristic"})
"""`cache_verdict` values meaning a cache may answer later polls by itself."""
CHECK_FOUND = frozenset({"stale-status", "etag-reused-across-states"})
"""Origin-check results that raised a finding (the rest: checked, origin ahead/behind, no state, check failed)."""


# --- reading ------------------------------------------------------------------------------------

@dataclass
class JobView:
    """One job's row with what the report needs next to it."""

    row: dict[str, Any]
    findings: list[dict[str, Any]]
    polls: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    """pollwatch's own origin checks (pollwatch_verify), oldest first."""
    worker: list[dict[str, Any]] = field(default_factory=list)
    """Worker log events joined to the job (`pollwatch worker-log`), oldest first."""
    anchor: str = ""

    @property
    def worker_end(self) -> dict[str, Any] | None:
        """The worker's terminal event, if it logged one."""
        return worker_end(self.worker)

    @property
    def behind_worker(self) -> list[dict[str, Any]]:
        """Polls answered non-terminal after the worker's end (the visible gap)."""
        return polls_behind_worker(self.worker, self.polls)

    @property
    def outcome(self) -> str:
        return self.row["terminal_state"] or "non-terminal"

    @property
    def states(self) -> list[str]:
        return json.loads(self.row["states"] or "[]")

    @property
    def codes(self) -> list[str]:
        return sorted({f["code"] for f in self.findings}, key=code_order)

    def interest(self) -> tuple[int, int, int, float]:
        """Sort key, most interesting first: worst severity, distinct codes, occurrences, age."""
        worst = min((severity_rank(f["severity"]) for f in self.findings), default=len(SEVERITIES_WORST_FIRST))
        return worst, -len(self.codes), -sum(f["count"] or 1 for f in self.findings), self.row["created_at"] or 0.0


@dataclass
class ReportData:
    db: str
    sessions: list[dict[str, Any]]
    jobs: list[JobView]
    orphans: list[dict[str, Any]]
    """Findings tied to no job (e.g. a 202 without a job reference)."""
    session_filter: str | None = None
    job_filter: str | None = None
    generated_at: float = field(default_factory=time.time)

    @property
    def findings(self) -> Iterator[dict[str, Any]]:
        yield from (f for job in self.jobs for f in job.findings)
        yield from self.orphans


@dataclass
class ReportStats:
    path: Path
    jobs: int
    drawn: int
    findings: int
    bytes: int
    seconds: float

    def line(self) -> str:
        return (f"wrote {self.path}: {self.jobs} job(s), {self.drawn} drawn in full, {self.findings} finding(s), "
                f"{self.bytes / 1024:.0f} KiB in {self.seconds:.2f} s")


def load(conn: sqlite3.Connection, db: str, *, session: str | None = None, job_prefix: str | None = None) -> ReportData:
    """Sessions, jobs and findings in scope; polls and transitions are loaded later, only for
    the jobs that get drawn."""
    sessions = [dict(r) for r in conn.execute(
        "select * from sessions where ? is null or id = ? order by started_at", (session, session))]
    if session and not sessions:
        raise ReportError(f"{db}: no session {session!r} (see `pollwatch jobs --db {db} --format json`)")
    where, args = "where (? is null or session_id = ?)", [session, session]
    job_where = where + (" and substr(job_id, 1, ?) = ?" if job_prefix else "")
    job_args = args + ([len(job_prefix), job_prefix] if job_prefix else [])
    with collector_paused():  # every job of the database, as plain rows: see store/reading.py
        names, plain = plain_rows(conn, f"select * from jobs {job_where} order by created_at, key", job_args)
        rows = [dict(zip(names, r)) for r in plain]
    if job_prefix and not rows:
        raise ReportError(f"{db}: no job id starts with {job_prefix!r}")
    by_job: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for f in conn.execute(f"select * from findings {where} order by ts, key", args):
        by_job[f["job_key"]].append(dict(f))
    jobs = [JobView(row, by_job.get(row["key"], []), anchor=f"job-{i}") for i, row in enumerate(rows, 1)]
    return ReportData(db=db, sessions=sessions, jobs=jobs, orphans=[] if job_prefix else by_job.get(None, []),
                      session_filter=session, job_filter=job_prefix)


POLL_COLUMNS = ("job_key, flow_id, kind, method, url, status, request_ts, response_ts, raw_state, state, "
                "cache_verdict, freshness_lifetime, served_by, client")


def attach_timelines(conn: sqlite3.Connection, jobs: Sequence[JobView], chunk: int = 500) -> None:
    """Polls, transitions and origin checks of `jobs`, a few queries per `chunk` jobs (SQLite caps
    parameters). A read-only database written before checks existed has no `checks` table.
    Worker events are read per job by the store's query that `pollwatch show` uses."""
    has_checks = conn.execute("select 1 from sqlite_master where type = 'table' and name = 'checks'").fetchone()
    for start in range(0, len(jobs), chunk):
        part = {j.row["key"]: j for j in jobs[start:start + chunk]}
        marks = ",".join("?" * len(part))
        for r in conn.execute(f"select {POLL_COLUMNS} from polls where job_key in ({marks}) "
                              "order by job_key, response_ts, id", list(part)):
            part[r["job_key"]].polls.append(dict(r))
        for r in conn.execute(f"select * from transitions where job_key in ({marks}) order by job_key, ts, id",
                              list(part)):
            part[r["job_key"]].transitions.append(dict(r))
        if has_checks:
            for r in conn.execute(f"select * from checks where job_key in ({marks}) order by job_key, sent_at, id",
                                  list(part)):
                part[r["job_key"]].checks.append(dict(r))
    for job in jobs:
        job.worker = list_worker_events(conn, job.row["key"], job.row["created_at"] or 0.0)


# --- which jobs are drawn -----------------------------------------------------------------------

@dataclass
class Plan:
    """Which jobs are drawn in full, and which only listed."""

    drawn: list[JobView]
    more: list[JobView]
    healthy: list[JobView]
    draw_healthy: bool

    @property
    def to_draw(self) -> list[JobView]:
        return self.drawn + (self.healthy if self.draw_healthy else [])


def plan(jobs: Sequence[JobView], full: int) -> Plan:
    """Jobs with findings first (worst first), up to `full`; healthy jobs are drawn only when
    they fit in what is left, else they become one collapsed table."""
    flagged = sorted((j for j in jobs if j.findings), key=JobView.interest)
    healthy = [j for j in jobs if not j.findings]
    drawn = flagged[:full]
    return Plan(drawn=drawn, more=flagged[full:], healthy=healthy, draw_healthy=len(healthy) <= full - len(drawn))


# --- database values onto the known names -------------------------------------------------------

def state_class(state: str | None) -> str:
    """A CSS class for a state; anything unexpected from the database is `unknown`."""
    if state is None:
        return "none"
    return state if state in STATES or state == "non-terminal" else "unknown"


def severity_class(severity: str | None) -> str:
    """A CSS class for a severity; anything unexpected from the database is `info`."""
    return severity if severity in SEVERITIES_WORST_FIRST else "info"


def severity_rank(severity: str | None) -> int:
    """0 for the worst severity; anything unexpected after the mildest."""
    order = SEVERITIES_WORST_FIRST
    return order.index(severity) if severity in order else len(order)


def code_order(code: str) -> tuple[int, str]:
    """Sort key of a finding code: worst severity first (unknown codes last), then by name."""
    kind = CATALOGUE.get(code)
    return (severity_rank(kind.severity.value) if kind else len(SEVERITIES_WORST_FIRST), code)
