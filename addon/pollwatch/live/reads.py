"""What the view reads from the database, through the CLI's own read path (store/query.py): a
page of jobs, the values its filters can take, one job in full with its timeline.

A page costs what the page holds, not what the session holds: the keys of the page are picked by
one query on the `jobs` table, then the rows of `pollwatch jobs` are read for those keys only.
Everything a request reads comes from one read transaction (the caller's), so the writer
committing meanwhile cannot tear a page.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pollwatch.live.rows import Filters, explanations
from pollwatch.report.data import JobView, attach_timelines
from pollwatch.report.page import MAX_MARKS
from pollwatch.report.support import support_text
from pollwatch.report.timeline import job_timeline
from pollwatch.store.query import job_detail, jobs_by_key

FACET_LIMIT = 100
"""Hosts and codes offered as filter values, most jobs first."""


def jobs_page(conn: sqlite3.Connection, session: str, filters: Filters, offset: int,
              limit: int) -> tuple[int, list[dict[str, Any]], dict[str, float]]:
    """How many of the session's jobs match, the `limit` newest of them after `offset` (rows of
    `pollwatch jobs --format json`), and when each of those was last written (`updated_at`)."""
    where, args = filters.sql()
    [total] = conn.execute(f"select count(*) from jobs j where j.session_id = ?{where}", [session, *args]).fetchone()
    if limit <= 0 or offset >= total:
        return total, [], {}
    page = conn.execute(f"select j.key, j.created_at, j.updated_at from jobs j where j.session_id = ?{where} "
                        "order by j.created_at desc, j.key desc limit ? offset ?",
                        [session, *args, limit, offset]).fetchall()
    rows = jobs_by_key(conn, [r["key"] for r in page])
    return total, [rows[r["key"]] for r in page if r["key"] in rows], {r["key"]: r["updated_at"] for r in page}


def facets(conn: sqlite3.Connection, session: str) -> dict[str, dict[str, int]]:
    """The values the filters can take in this session, with how many jobs have each."""
    def counted(sql: str) -> dict[str, int]:
        return {str(value): n for value, n in conn.execute(sql, (session, FACET_LIMIT)) if value is not None}

    return {
        "states": counted("select last_state, count(*) n from jobs where session_id = ? group by last_state "
                          "order by n desc limit ?"),
        "codes": counted("select code, count(distinct job_key) n from findings where session_id = ? and job_key "
                         "is not null group by code order by n desc limit ?"),
        "hosts": counted("select host, count(*) n from jobs where session_id = ? group by host order by n desc limit ?"),
    }


def written(conn: sqlite3.Connection, keys: list[str], chunk: int = 500) -> set[str]:
    """Which of `keys` the database already holds."""
    found: set[str] = set()
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        found |= {r[0] for r in conn.execute(f"select key from jobs where key in ({','.join('?' * len(part))})", part)}
    return found


def updated_at(conn: sqlite3.Connection, key: str) -> float | None:
    row = conn.execute("select updated_at from jobs where key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def job_in_full(conn: sqlite3.Connection, key: str) -> dict[str, Any]:
    """`pollwatch show --format json` of one job, and what the view adds: each code's title and
    fix, the support block as the text `show` prints, and the report's timeline drawing."""
    detail = job_detail(conn, key)
    detail["explanations"] = explanations(detail["findings"])
    detail["support_text"] = support_text(detail["support"])
    view = JobView(dict(conn.execute("select * from jobs where key = ?", (key,)).fetchone()),
                   [dict(f) for f in conn.execute("select * from findings where job_key = ? order by ts, key", (key,))])
    attach_timelines(conn, [view])
    detail["timeline_svg"] = job_timeline(view, MAX_MARKS)
    return detail
