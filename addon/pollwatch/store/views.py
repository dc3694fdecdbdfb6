"""SQL views for the questions people ask of a capture, so plain SQL, sqlite-utils and Datasette
answer them without knowing the schema: which jobs are stuck, which polls a cache could answer,
which findings are common, what happened to one job.

`ensure_views` runs on every connection; it writes only when a view is missing or its SQL changed,
so opening a database that is up to date stays read-only (a live proxy may be writing to it).
Column names of the views are a contract like the JSON of the CLI: add, never rename.
"""

from __future__ import annotations

import json
import sqlite3
from importlib import resources
from typing import Any

NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""Now as epoch seconds with a fraction (unixepoch('subsec') needs SQLite 3.42)."""


def _codes(where: str) -> str:
    """Distinct finding codes of the rows `where` selects, sorted, as one 'a, b' string."""
    return (f"(select group_concat(code, ', ') from "
            f"(select distinct code from findings f where {where} order by code))")


def _severity_count(severity: str | None) -> str:
    extra = f" and f.severity = '{severity}'" if severity else ""
    return f"(select count(*) from findings f where f.job_key = j.key{extra})"


_SESSION_END = "(select s.ended_at from sessions s where s.id = j.session_id)"
"""A lookup, not a join: a one-table view is merged into a query that joins it (`pollwatch show`
finds its job by key), where a view with a join is built whole first, every job of the database."""

VIEWS: dict[str, str] = {
    "job_summary": f"""
select
  j.key, j.session_id, j.job_id, j.host, j.status_url, j.created_at, j.states, j.last_state,
  j.terminal_state, j.terminal_at, j.polls, j.polls_after_terminal, j.last_poll_at,
  {_severity_count(None)} as findings,
  {_severity_count('error')} as errors,
  {_severity_count('warning')} as warnings,
  {_severity_count('info')} as infos,
  {_codes('f.job_key = j.key')} as codes
from jobs j""",
    "stuck_jobs": f"""
select
  j.key, j.session_id, j.job_id, j.host, j.status_url, j.last_state, j.created_at, j.polls,
  coalesce(j.last_poll_at, j.created_at) as last_seen_at,
  coalesce({_SESSION_END}, {NOW}) as as_of,
  round(coalesce({_SESSION_END}, {NOW}) - coalesce(j.last_poll_at, j.created_at), 3) as idle_seconds,
  {_codes('f.job_key = j.key')} as codes
from jobs j
where j.terminal_state is null""",
    "cached_polls": """
select
  p.id as poll_id, p.session_id, p.job_key, j.job_id, p.flow_id, p.kind, p.method, p.url, p.status,
  p.response_ts as ts, round(p.response_ts - j.created_at, 3) as offset_s, p.state, p.cache_verdict,
  p.freshness_lifetime, p.served_by,
  json_extract(p.response_cache_headers, '$."cache-control"') as cache_control,
  json_extract(p.response_cache_headers, '$.age') as age,
  p.response_cache_headers
from polls p join jobs j on j.key = p.job_key
where coalesce(p.served_by, 'origin') != 'origin' or p.cache_verdict in ('fresh', 'heuristic')""",
    "finding_counts": """
select
  code, severity, count(*) as count, sum(count) as occurrences, count(distinct job_key) as jobs,
  count(distinct session_id) as sessions, min(ts) as first_ts, max(ts) as last_ts
from findings
group by code, severity""",
    "job_timeline": f"""
select
  p.job_key, j.job_id, p.session_id, p.id as poll_id, p.flow_id, p.kind, p.matched_by,
  round(p.response_ts - j.created_at, 3) as offset_s, p.request_ts, p.response_ts, p.method, p.url,
  p.status, p.raw_state, p.state, p.cache_verdict, p.served_by, p.ids,
  {_codes('f.job_key = p.job_key and f.flow_id = p.flow_id')} as findings
from polls p join jobs j on j.key = p.job_key""",
}


def _create_sql(name: str, temporary: bool = False) -> str:
    return f"CREATE {'TEMP ' if temporary else ''}VIEW {name} AS{VIEWS[name]}"


def ensure_views(conn: sqlite3.Connection, *, temporary: bool = False) -> None:
    """Create the views that are missing or out of date, in one transaction; no write otherwise.
    Commits any transaction the caller has open, so call it right after connecting. `temporary`:
    for this connection only, shadowing the file's own (readers never change the file)."""
    existing = dict(conn.execute("select name, sql from sqlite_master where type = 'view'").fetchall())
    stale = [name for name in VIEWS if existing.get(name) != _create_sql(name)]
    if not stale:
        return
    if temporary:
        conn.executescript("".join(f"{_create_sql(name, temporary=True)};\n" for name in stale))
        return
    statements = "".join(f"DROP VIEW IF EXISTS {name};\n{_create_sql(name)};\n" for name in stale)
    conn.executescript(f"BEGIN IMMEDIATE;\n{statements}COMMIT;")


METADATA_FILE = "datasette_metadata.json"
METADATA_DATABASE = "pollwatch"
"""The database name the shipped metadata is written for (Datasette names a database by its file stem)."""


def datasette_metadata(database: str = METADATA_DATABASE) -> dict[str, Any]:
    """The shipped Datasette metadata, its database section renamed for a file called `database`.sqlite."""
    metadata = json.loads(resources.files(__package__).joinpath(METADATA_FILE).read_text(encoding="utf-8"))
    metadata["databases"] = {database: metadata["databases"][METADATA_DATABASE]}
    return metadata
