"""Read-side of the database: the rows behind `pollwatch jobs`, `warnings`, `show` and `sessions`.

The JSON shapes returned here are contracts that scripts rely on; add fields, never rename.
Filters are SQL over the views of `views.py`, so the CLI and plain SQL give the same answers.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from pollwatch.core.findings import Severity
from pollwatch.core.states import State
from pollwatch.errors import QueryError
from pollwatch.store.reading import collector_paused, plain_rows

SEVERITIES = tuple(s.value for s in Severity)  # least to most severe
"""Least to most severe: `--severity warning` means warning and error."""



def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds: unambiguous in an incident ticket."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # a stored time no clock can show (an old bad row)
        return str(ts)


class _Where:
    """AND-ed SQL conditions with their parameters, built from whichever filters were given."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, *args: Any) -> None:
        self.clauses.append(clause)
        self.args.extend(args)

    @property
    def sql(self) -> str:
        return " where " + " and ".join(self.clauses) if self.clauses else ""


def _split_codes(codes: str | None) -> list[str]:
    return codes.split(", ") if codes else []


_JOB_FROM = " from job_summary s join jobs j on j.key = s.key left join stuck_jobs st on st.key = s.key"
JOB_ROWS = f"select s.*, j.created_by, st.idle_seconds, st.last_seen_at{_JOB_FROM}"
"""What every job listing selects; `_job` maps its rows to `pollwatch jobs --format json`."""


def list_jobs(conn: sqlite3.Connection, session: str | None = None, *, state: str | None = None,
              terminal: bool | None = None, host: str | None = None, has_finding: bool = False,
              code: str | None = None, since: float | None = None, stuck_after: float | None = None,
              key: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Jobs matching every filter given, oldest first; with `stuck_after`, only non-terminal jobs
    idle at least that many seconds (see the `stuck_jobs` view), longest idle first. `limit`
    keeps the rows a person looks at first: the newest jobs (still oldest first), or the longest
    idle. Their keys are picked on the bare tables, so a limited listing costs what it shows."""
    where, order = _job_filter(session, state, terminal, host, has_finding, code, since, stuck_after, key)
    if limit is None:
        return _jobs(conn, f"{JOB_ROWS}{where.sql} order by {order}", where.args)
    newest = stuck_after is None  # chronological: the newest are the last rows
    pick = "st.idle_seconds desc, s.key" if not newest else "s.created_at desc, s.key desc"
    keys = [r[0] for r in conn.execute(f"select s.key {_JOB_FROM}{where.sql} order by {pick} limit ?",
                                       [*where.args, max(limit, 0)])]
    found = jobs_by_key(conn, keys)
    picked = [found[k] for k in keys if k in found]
    return picked[::-1] if newest else picked


def count_jobs(conn: sqlite3.Connection, session: str | None = None, *, state: str | None = None,
               terminal: bool | None = None, host: str | None = None, has_finding: bool = False,
               code: str | None = None, since: float | None = None, stuck_after: float | None = None) -> int:
    """How many jobs `list_jobs` would list with the same filters and no limit."""
    where, _ = _job_filter(session, state, terminal, host, has_finding, code, since, stuck_after, None)
    return conn.execute(f"select count(*) {_JOB_FROM}{where.sql}", where.args).fetchone()[0]


def jobs_by_key(conn: sqlite3.Connection, keys: Sequence[str], chunk: int = 500) -> dict[str, dict[str, Any]]:
    """Rows of `pollwatch jobs --format json` for exactly these jobs, by key: a query per `chunk`
    keys whatever the database's size (SQLite caps parameters)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), chunk):
        part = list(keys[start:start + chunk])
        rows = _jobs(conn, f"{JOB_ROWS} where s.key in ({','.join('?' * len(part))})", part)
        found.update((r["key"], r) for r in rows)
    return found


def _job_filter(session: str | None, state: str | None, terminal: bool | None, host: str | None,
                has_finding: bool, code: str | None, since: float | None, stuck_after: float | None,
                key: str | None) -> tuple[_Where, str]:
    """The conditions of `list_jobs`' filters, and its order."""
    where = _Where()
    for value, clause in ((session, "s.session_id = ?"), (state, "s.last_state = ?"), (key, "s.key = ?"),
                          (host, "instr(lower(s.host), lower(?)) > 0"), (since, "s.created_at >= ?"),
                          (stuck_after, "st.idle_seconds >= ?"),
                          (code, "exists (select 1 from findings f where f.job_key = s.key and f.code = ?)")):
        if value is not None:
            where.add(clause, value)
    if terminal is not None:
        where.add(f"s.terminal_state is {'not ' if terminal else ''}null")
    if has_finding:
        where.add("s.findings > 0")
    return where, ("st.idle_seconds desc, s.key" if stuck_after is not None else "s.created_at, s.key")


_JOB_COLUMNS = ("created_at", "created_by", "findings", "host", "idle_seconds", "job_id", "key", "last_poll_at",
                "last_state", "polls", "polls_after_terminal", "session_id", "status_url", "terminal_at",
                "terminal_state")
"""The columns of JOB_ROWS a row of `pollwatch jobs --format json` carries as they are."""


def _jobs(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows of `pollwatch jobs --format json`. A listing may hold every job of a large database,
    so the rows are read as plain tuples and mapped by position (sqlite3.Row's lookups by name,
    and decoding text in Python, cost more than the query)."""
    with collector_paused():
        names, rows = plain_rows(conn, sql, args)
        at = {name: i for i, name in enumerate(names)}
        plain = itemgetter(*(at[c] for c in _JOB_COLUMNS))
        states, codes = at["states"], at["codes"]
        severities = itemgetter(*(at[f"{s}s"] for s in SEVERITIES))
        states_of = _StateLists()
        return [dict(zip(_JOB_COLUMNS, plain(r)), states=states_of(r[states]),
                     codes=_split_codes(r[codes]), findings_by_severity=dict(zip(SEVERITIES, severities(r))))
                for r in rows]


class _StateLists:
    """A job's `states` column as a list. Most jobs of a database went through the same few
    sequences, so each text is parsed once (up to KEPT of them) and every row gets its own copy
    (of a list of words: anything else, a damaged cell, is parsed for each row)."""

    KEPT = 4096

    def __init__(self) -> None:
        self._parsed: dict[str | None, list[str]] = {}

    def __call__(self, text: str | None) -> list[str]:
        found = self._parsed.get(text)
        if found is not None:
            return list(found)
        value = json.loads(text or "[]")
        if isinstance(value, list) and all(w.__class__ is str for w in value) and len(self._parsed) < self.KEPT:
            self._parsed[text] = value
            return list(value)
        return value


def list_findings(conn: sqlite3.Connection, session: str | None = None, *, code: str | None = None,
                  severity: str | None = None, job: str | None = None, job_key: str | None = None,
                  since: float | None = None, limit: int | None = None, skip: int = 0) -> list[dict[str, Any]]:
    """Findings matching every filter, oldest first: `severity` is a minimum, `job` a prefix of the
    job id or key. `limit` keeps the newest (after the `skip` newest), still oldest first."""
    where = _finding_filter(session, code, severity, job, job_key, since)
    if limit is None:
        rows = conn.execute(f"select * from findings{where.sql} order by ts, key", where.args).fetchall()
    else:
        rows = conn.execute(f"select * from findings{where.sql} order by ts desc, key desc limit ? offset ?",
                            [*where.args, max(limit, 0), max(skip, 0)]).fetchall()[::-1]
    return [{
        "code": r["code"], "severity": r["severity"], "job_id": r["job_id"], "ts": r["ts"], "message": r["message"],
        "count": r["count"], "flow_id": r["flow_id"], "evidence": json.loads(r["evidence"] or "{}"),
        "session_id": r["session_id"], "job_key": r["job_key"],
    } for r in rows]


def count_findings(conn: sqlite3.Connection, session: str | None = None, *, code: str | None = None,
                   severity: str | None = None, job: str | None = None, since: float | None = None) -> int:
    """How many findings `list_findings` would list with the same filters and no limit."""
    where = _finding_filter(session, code, severity, job, None, since)
    return conn.execute(f"select count(*) from findings{where.sql}", where.args).fetchone()[0]


def _finding_filter(session: str | None, code: str | None, severity: str | None, job: str | None,
                    job_key: str | None, since: float | None) -> _Where:
    where = _Where()
    for value, clause in ((session, "session_id = ?"), (code, "code = ?"), (job_key, "job_key = ?"),
                          (since, "ts >= ?")):
        if value is not None:
            where.add(clause, value)
    if severity is not None:
        allowed = SEVERITIES[SEVERITIES.index(severity):]
        where.add(f"severity in ({', '.join('?' * len(allowed))})", *allowed)
    if job is not None:
        where.add("(substr(job_id, 1, length(?)) = ? or substr(job_key, 1, length(?)) = ?)", *[job] * 4)
    return where


def list_sessions(conn: sqlite3.Connection, session: str | None = None) -> list[dict[str, Any]]:
    """Capture sessions, oldest first, with how many jobs and findings each holds."""
    where = _Where()
    if session is not None:
        where.add("s.id = ?", session)
    rows = conn.execute(f"""
        select s.*, (select count(*) from jobs j where j.session_id = s.id) as jobs,
                    (select count(*) from findings f where f.session_id = s.id) as findings
        from sessions s{where.sql} order by s.started_at, s.id""", where.args).fetchall()
    return [{k: r[k] for k in ("id", "started_at", "ended_at", "source", "label", "version", "jobs", "findings")}
            | {"end": session_end(r)} for r in rows]


def session_end(row: sqlite3.Row) -> str:
    """"ended" (its end was written), "open" (its writer still runs on this machine) or "killed":
    a writer always writes the end when it stops, so a session without one whose process is gone
    was killed (SIGKILL, power loss) and its end is unknown."""
    if row["ended_at"] is not None:
        return "ended"
    try:
        writer = json.loads(row["settings"] or "{}").get("writer") or {}
    except (ValueError, AttributeError):
        writer = {}
    if writer.get("host") != socket.gethostname() or not isinstance(writer.get("pid"), int):
        return "open"  # written elsewhere (or by an older pollwatch): nothing here can tell
    try:
        os.kill(writer["pid"], 0)
    except PermissionError:
        return "open"  # alive, another user's
    except OSError:
        return "killed"
    return "open"


def resolve_job(conn: sqlite3.Connection, ref: str, session: str | None = None) -> str:
    """The key of the one job `ref` names: its exact key, exact job id, a job id prefix or a key
    prefix, the first of these that matches anything. Job ids repeat across sessions and servers,
    so several matches are an error that lists the candidates' keys."""
    where = _Where()
    where.add("(substr(job_id, 1, length(?)) = ? or substr(key, 1, length(?)) = ?)", *[ref] * 4)
    if session is not None:
        where.add("session_id = ?", session)
    rows = conn.execute(f"select * from job_summary{where.sql} order by created_at, key", where.args).fetchall()
    tiers = ([r for r in rows if r["key"] == ref], [r for r in rows if r["job_id"] == ref],
             [r for r in rows if r["job_id"].startswith(ref)], rows)
    matches = next((tier for tier in tiers if tier), [])
    if not matches:
        scope = f" in session {session}" if session else ""
        raise QueryError(f"no job matches {ref!r}{scope} (see `pollwatch jobs`)")
    if len(matches) > 1:
        raise QueryError(f"{ref!r} matches {len(matches)} jobs: {_candidates(matches)}; "
                         "give more of the id, a key from that list, or --session")
    return matches[0]["key"]


def _candidates(rows: Sequence[sqlite3.Row], limit: int = 5) -> str:
    shown = ", ".join(f"{r['key']} ({r['job_id']}, {r['host']}, {r['last_state'] or 'no state'})"
                      for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def job_detail(conn: sqlite3.Connection, key: str) -> dict[str, Any]:
    """Everything about one job in one object: the job, each exchange, transitions, findings, the
    facts an incident needs (`support`) and, when pollwatch_verify sent any, its origin `checks`."""
    [job] = list_jobs(conn, key=key)
    raw = conn.execute("select * from jobs where key = ?", (key,)).fetchone()
    job |= {"create_method": raw["create_method"], "create_url": raw["create_url"],
            "create_status": raw["create_status"], "reference_source": raw["reference_source"],
            "operation_ids": json.loads(raw["operation_ids"] or "{}")}
    polls = [_poll(r) for r in conn.execute(
        "select * from job_timeline where job_key = ? order by response_ts, poll_id", (key,))]
    transitions = [{"from_state": r["from_state"], "to_state": r["to_state"], "ts": r["ts"], "at": iso(r["ts"]),
                    "offset_s": round(r["ts"] - job["created_at"], 3), "flow_id": r["flow_id"]}
                   for r in conn.execute("select * from transitions where job_key = ? order by ts, id", (key,))]
    findings = list_findings(conn, job_key=key)
    detail = {"job": job, "polls": polls, "transitions": transitions, "findings": findings,
              "support": _support(job, polls, transitions, findings)}
    checks = list_checks(conn, key, job["created_at"])
    if checks:  # only where pollwatch_verify sent some: the object stays as it was without them
        detail["checks"] = checks
        detail["support"]["checks"] = dict(sorted(Counter(c["result"] for c in checks).items()))
    events = list_worker_events(conn, key, job["created_at"])
    if events:  # only where worker logs were joined: the object stays as it was without them
        detail["worker_events"] = events
        detail["support"]["worker_transitions"] = worker_transitions(events)
    return detail


WORKER_FIELDS = ("ts", "job_id", "trace_id", "state_word", "state", "source", "message")


def list_worker_events(conn: sqlite3.Connection, job_key: str, created_at: float) -> list[dict[str, Any]]:
    """The worker log events joined to a job, oldest first, on the job's time axis (`offset_s`)."""
    if conn.execute("select 1 from sqlite_master where type = 'table' and name = 'worker_events'").fetchone() is None:
        return []
    rows = conn.execute("select * from worker_events where job_key = ? order by ts, id", (job_key,)).fetchall()
    return [{k: r[k] for k in WORKER_FIELDS} | {"operation_ids": json.loads(r["operation_ids"] or "[]"),
                                                 "at": iso(r["ts"]), "offset_s": round(r["ts"] - created_at, 3)}
            for r in rows]


def worker_transitions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker's state changes (repeats collapsed), to set beside the client's."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e["state"] and (not out or out[-1]["to"] != e["state"]):
            out.append({"at": e["at"], "from": out[-1]["to"] if out else None, "to": e["state"], "source": e["source"],
                        "offset_s": e["offset_s"]})
    return out


TERMINAL_STATES = frozenset(s.value for s in State if s.terminal)


def worker_end(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The worker's first terminal event: from then on, a non-terminal answer is stale."""
    return next((e for e in events if e["state"] in TERMINAL_STATES), None)


def polls_behind_worker(events: Sequence[dict[str, Any]], polls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Polls (`polls` rows) sent after the worker's end and answered non-terminal: the gap the
    report and `diff` draw (the finding itself, with its grace, is core/worker_rules.py's)."""
    end = worker_end(events)
    if end is None:
        return []
    return [p for p in polls if p["kind"] == "poll" and (p["request_ts"] or p["response_ts"]) > end["ts"]
            and p["state"] is not None and p["state"] not in TERMINAL_STATES]


CHECK_FIELDS = ("flow_id", "reason", "method", "url", "sent_at", "received_at", "status", "client_state",
                "client_etag", "origin_state", "origin_etag", "result", "detail")


def list_checks(conn: sqlite3.Connection, job_key: str, created_at: float | None = None) -> list[dict[str, Any]]:
    """pollwatch's own origin checks of a job (`pollwatch_verify`), oldest first; none in a
    read-only database written before checks existed."""
    if conn.execute("select 1 from sqlite_master where type = 'table' and name = 'checks'").fetchone() is None:
        return []
    rows = conn.execute("select * from checks where job_key = ? order by sent_at, id", (job_key,)).fetchall()
    return [{k: r[k] for k in CHECK_FIELDS} | {
        "at": iso(r["sent_at"]), "offset_s": round(r["sent_at"] - created_at, 3) if created_at is not None else None,
    } for r in rows]


def _poll(r: sqlite3.Row) -> dict[str, Any]:
    return {k: r[k] for k in ("poll_id", "flow_id", "kind", "matched_by", "offset_s", "request_ts", "response_ts",
                              "method", "url", "status", "raw_state", "state", "cache_verdict", "served_by")} | {
        "ids": json.loads(r["ids"] or "{}"), "findings": _split_codes(r["findings"])}


def _support(job: dict[str, Any], polls: list[dict[str, Any]], transitions: list[dict[str, Any]],
             findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The facts someone on the server side needs to find this job in their own logs."""
    ids: dict[str, list[str]] = {}
    for source in [*(p["ids"] for p in polls), job["operation_ids"]]:
        for name, value in source.items():
            if value not in ids.setdefault(name, []):
                ids[name].append(value)
    created = (f"{job['create_method']} {job['create_url']} -> {job['create_status']}"
               if job["created_by"] == "response" else None)
    return {
        "job_id": job["job_id"], "job_key": job["key"], "session_id": job["session_id"],
        "status_url": job["status_url"], "host": job["host"], "creating_request": created,
        "created_at": iso(job["created_at"]), "ids_seen": ids, "last_state": job["last_state"],
        "terminal_state": job["terminal_state"], "terminal_at": iso(job["terminal_at"]),
        "transitions": [{"at": t["at"], "from": t["from_state"], "to": t["to_state"]} for t in transitions],
        "findings": [{"code": f["code"], "severity": f["severity"], "count": f["count"]} for f in findings],
    }
