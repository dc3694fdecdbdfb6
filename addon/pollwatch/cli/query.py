"""`pollwatch jobs | warnings | show | sessions | datasette`: asking questions of a capture.

Every command reads through `query.py` (so scripts and people see the same rows), prints a rich
table for people and `--format json` for scripts, and turns a database it cannot use or a job it
cannot find into one line on stderr.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pollwatch.cli.options import (
    code_choice,
    db_option,
    format_option,
    limit_option,
    rows_to_show,
    session_option,
    since_option,
)
from pollwatch.cli.render import STATE_STYLE, SEVERITY_STYLE, Cell, echo_json, emit, table
from pollwatch.store.query import (
    SEVERITIES,
    count_findings,
    count_jobs,
    job_detail,
    list_findings,
    list_jobs,
    list_sessions,
    resolve_job,
)
from pollwatch.store.reading import open_database
from pollwatch.core.states import State
from pollwatch.errors import StorageError
from pollwatch.report.support import support_text
from pollwatch.store.views import datasette_metadata

DEFAULT_STUCK_AFTER = 60.0

T = TypeVar("T")


def _read(db: str, query: Callable[[Any], T]) -> T:
    """Run `query` on the database; a database error becomes a one-line StorageError."""
    try:
        conn = open_database(db)
    except sqlite3.Error as exc:  # e.g. locked, or read-only while its views need creating
        raise StorageError(f"{db}: cannot read ({exc})") from exc
    try:
        conn.execute("begin")  # one snapshot: a count and its rows agree while a proxy writes
        return query(conn)
    except sqlite3.Error as exc:
        raise StorageError(f"{db}: cannot read ({exc})") from exc
    finally:
        conn.close()


def _clock(timestamps: Iterable[float | None]) -> tuple[Callable[[float | None], str], str]:
    """A local-time formatter for one table, and what to add to its title: `HH:MM:SS` when every
    time falls on one day (the title names it), else date and minute. Keeps narrow tables readable."""
    days = {datetime.fromtimestamp(ts).date() for ts in timestamps if ts}
    pattern, note = ("%H:%M:%S", f", {days.pop()} (local time)") if len(days) == 1 else ("%Y-%m-%d %H:%M", "")
    return (lambda ts: datetime.fromtimestamp(ts).strftime(pattern) if ts else "-"), note


def _duration(seconds: float | None) -> str:
    """`42s`, `5m 03s`, `2h 05m`, `3d 04h`: idle times at a glance."""
    if seconds is None:
        return "-"
    s = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit} {s % size // sub_size:02d}{sub}"
    return f"{seconds:.0f}s"


def _state(state: str | None) -> Text:
    return Text(state, STATE_STYLE.get(state, "")) if state else Text("-")


def _states(states: list[str]) -> Text:
    return Text(" → ").join(map(_state, states)) if states else Text("-")


def _severity(severity: str) -> Text:
    return Text(severity, SEVERITY_STYLE.get(severity, ""))


def _codes(codes: list[str]) -> Text:
    return Text(", ".join(codes), "yellow") if codes else Text("-")


# --- commands -----------------------------------------------------------------------------------

@click.command()
@db_option()
@session_option
@click.option("--state", type=click.Choice([s.value for s in State]), default=None, help="Only jobs whose last state is STATE.")
@click.option("--terminal/--non-terminal", default=None, help="Only jobs that reached a terminal state / that did not.")
@click.option("--host", default=None, help="Only jobs whose host contains TEXT.", metavar="TEXT")
@click.option("--has-finding", is_flag=True, help="Only jobs with at least one finding.")
@click.option("--code", type=code_choice, default=None, metavar="CODE", help="Only jobs with a finding of CODE.")
@since_option
@click.option("--stuck", is_flag=True,
              help="Only non-terminal jobs without a poll for --stuck-after seconds: last state, idle time, why.")
@click.option("--stuck-after", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help=f"Idle time that makes a job stuck (default {DEFAULT_STUCK_AFTER:g}; implies --stuck).")
@limit_option
@format_option
def jobs(db: str, session: str | None, state: str | None, terminal: bool | None, host: str | None,
         has_finding: bool, code: str | None, since: float | None, stuck: bool, stuck_after: float | None,
         limit: int | None, fmt: str) -> None:
    """List captured jobs with their state sequence; `--stuck` answers "which jobs are stuck, and why".

    Idle time counts from a job's last poll to the end of its session (now while it is open).
    """
    if stuck and stuck_after is None:
        stuck_after = DEFAULT_STUCK_AFTER
    filters = dict(state=state, terminal=terminal, host=host, has_finding=has_finding, code=code, since=since,
                   stuck_after=stuck_after)
    shown = rows_to_show(limit, fmt)
    total, rows = _read(db, lambda conn: (
        count_jobs(conn, session, **filters) if shown is not None else None,
        list_jobs(conn, session, limit=shown, **filters)))
    if fmt == "json":  # every job of the database: none of the table's preparation
        echo_json(rows)
        return
    keys, key = _key_column(rows)
    if stuck_after is not None:
        emit(rows, fmt, f"stuck job(s) in {db}: no terminal state, no poll for {stuck_after:g}s or more",
              ("job", "host", "last state", "idle", "polls", "findings", *keys),
              lambda r: [r["job_id"], r["host"], _state(r["last_state"]), _duration(r["idle_seconds"]),
                         str(r["polls"]), _codes(r["codes"]), *key(r)], total=total, more="less idle ones")
        return
    when, day = _clock(r["created_at"] for r in rows)
    emit(rows, fmt, f"job(s) in {db}{day}", ("job", "host", "created", "states", "polls", "findings", *keys),
          lambda r: [r["job_id"], r["host"], when(r["created_at"]),
                     _states(r["states"]), str(r["polls"]), _codes(r["codes"]), *key(r)],
          total=total, more="older jobs")


def _key_column(rows: list[dict[str, Any]]) -> tuple[tuple[str, ...], Callable[[dict[str, Any]], list[Cell]]]:
    """A `key` column only when job ids repeat (several sessions or servers): then `show` needs it."""
    if len({r["job_id"] for r in rows}) == len(rows):
        return (), lambda r: []
    return ("key",), lambda r: [r["key"]]


@click.command()
@db_option()
@session_option
@click.option("--code", type=code_choice, default=None, metavar="CODE", help="Only findings of CODE.")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None,
              help="Only findings at least this severe (info < warning < error).")
@click.option("--job", default=None, metavar="PREFIX", help="Only findings of jobs whose id (or key) starts with PREFIX.")
@since_option
@limit_option
@format_option
def warnings(db: str, session: str | None, code: str | None, severity: str | None, job: str | None,
             since: float | None, limit: int | None, fmt: str) -> None:
    """List findings: code, severity, job and what to do."""
    filters = dict(code=code, severity=severity, job=job, since=since)
    shown = rows_to_show(limit, fmt)
    total, rows = _read(db, lambda conn: (
        count_findings(conn, session, **filters) if shown is not None else None,
        list_findings(conn, session, limit=shown, **filters)))
    if fmt == "json":
        echo_json(rows)
        return
    when, day = _clock(r["ts"] for r in rows)
    emit(rows, fmt, f"finding(s) in {db}{day}", ("time", "severity", "code", "job", "count", "message"),
          lambda r: [when(r["ts"]), _severity(r["severity"]), r["code"], r["job_id"] or "-", str(r["count"]),
                     r["message"]], total=total, more="older findings")


ENDS = {"open": "still open", "killed": "unknown (process killed)"}
"""How `sessions` shows a session whose end was never written (store.query.session_end)."""


@click.command()
@db_option()
@session_option
@format_option
def sessions(db: str, session: str | None, fmt: str) -> None:
    """List capture sessions (live proxy runs and offline analyses) with their jobs and findings."""
    rows = _read(db, lambda conn: list_sessions(conn, session))
    when, day = _clock(ts for r in rows for ts in (r["started_at"], r["ended_at"]))
    emit(rows, fmt, f"session(s) in {db}{day}", ("id", "started", "ended", "source", "label", "jobs", "findings"),
          lambda r: [r["id"], when(r["started_at"]), ENDS.get(r["end"]) or when(r["ended_at"]), r["source"], r["label"] or "-",
                     str(r["jobs"]), str(r["findings"])])


@click.command()
@click.argument("job")
@db_option()
@session_option
@format_option
def show(job: str, db: str, session: str | None, fmt: str) -> None:
    """Everything about one JOB (id, id prefix or key): each exchange, its transitions, and a
    support block to paste into an incident."""
    detail = _read(db, lambda conn: job_detail(conn, resolve_job(conn, job, session)))
    if fmt == "json":
        click.echo(json.dumps(detail, indent=2, sort_keys=True))
        return
    console = Console()
    console.print(_timeline(detail))
    console.print(_transitions(detail))
    if detail.get("checks"):
        console.print(_checks(detail))
    if detail.get("worker_events"):
        console.print(_worker(detail))
    text = support_text(detail["support"])
    # horizontal rules only, never wrapped or cropped (the terminal folds long lines visually):
    # copied lines carry no border characters and stay whole
    width = max(console.width, 2 + max(map(len, text.splitlines())))
    Console(width=width).print(Panel(Text(text, no_wrap=True), title="support block (paste into the incident)",
                                     title_align="left", box=box.HORIZONTALS, padding=(0, 0)))


def _timeline(detail: dict[str, Any]) -> Table:
    def state(p: dict[str, Any]) -> Text:
        if p["raw_state"] and p["raw_state"] != p["state"]:
            return Text.assemble(p["raw_state"], " → ", _state(p["state"]))
        return _state(p["state"])

    job = detail["job"]
    return table(f"job {job['job_id']} ({job['key']}): {len(detail['polls'])} exchange(s)",
                  ("offset", "method", "status", "state", "cache / served by", "findings"),
                  ([f"{p['offset_s']:+.2f}s", p["method"], str(p["status"] or "-"), state(p),
                    f"{p['cache_verdict']} / {p['served_by']}", _codes(p["findings"])] for p in detail["polls"]))


def _transitions(detail: dict[str, Any]) -> Table:
    return table("transitions", ("offset", "at (UTC)", "from", "to"),
                  ([f"{t['offset_s']:+.2f}s", t["at"], _state(t["from_state"]), _state(t["to_state"])]
                   for t in detail["transitions"]))


CHECK_STYLE = {"checked": "green", "stale-status": "red", "etag-reused-across-states": "red",
               "check failed": "yellow"}


def _checks(detail: dict[str, Any]) -> Table:
    """What pollwatch itself sent to the origin (pollwatch_verify), and what it found."""
    def side(state: str | None, etag: str | None) -> Text:
        return Text.assemble(_state(state), f" {etag}" if etag else "")

    return table("origin checks pollwatch sent (GET, Cache-Control: no-cache, X-Pollwatch-Check: 1)",
                 ("offset", "why", "URL", "client had", "origin says", "result"),
                 ([f"{c['offset_s']:+.2f}s", c["reason"], c["url"], side(c["client_state"], c["client_etag"]),
                   Text.assemble(f"{c['status'] or '-'} ", side(c["origin_state"], c["origin_etag"])),
                   Text(c["result"] + (f" ({c['detail']})" if c["detail"] else ""), CHECK_STYLE.get(c["result"], ""))]
                  for c in detail["checks"]))


def _worker(detail: dict[str, Any]) -> Table:
    """The worker's log lines for this job, on the same axis as the exchanges above."""
    return table("worker log (offsets from the job's creation, as above)", ("offset", "at (UTC)", "state", "source", "message"),
                 ([f"{e['offset_s']:+.2f}s", e["at"], _state(e["state"]), e["source"], e["message"] or ""]
                  for e in detail["worker_events"]))


@click.command("datasette", context_settings={"ignore_unknown_options": True})
@db_option()
@click.argument("datasette_args", nargs=-1, type=click.UNPROCESSED)
def datasette_command(db: str, datasette_args: Sequence[str]) -> None:
    """Browse the database in Datasette with pollwatch's descriptions and canned queries
    (stuck jobs, cached polls, findings by code, a job's timeline).

    Arguments after `--` go to `datasette serve`, e.g. `pollwatch datasette -- --port 8002 --open`.
    """
    _read(db, lambda conn: None)  # a missing or foreign database is refused here; views get created
    launcher = datasette_launcher()
    if launcher is None:
        raise click.ClickException("datasette is not installed: pip install datasette  "
                                   "(or pip install 'pollwatch[datasette]')")
    with tempfile.TemporaryDirectory(prefix="pollwatch-datasette-") as tmp:
        metadata = Path(tmp) / "metadata.json"
        metadata.write_text(json.dumps(datasette_metadata(Path(db).stem), indent=2))
        code = _run_until_done([*launcher, "serve", db, "--metadata", str(metadata), *datasette_args])
    sys.exit(code)


def _run_until_done(argv: list[str]) -> int:
    """Run a child in the foreground; a SIGTERM to us stops it too (Ctrl-C reaches it by itself)."""
    process = subprocess.Popen(argv)
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def datasette_launcher() -> list[str] | None:
    """How to start datasette: from this Python if installed here, else a `datasette` on PATH."""
    if importlib.util.find_spec("datasette") is not None:
        return [sys.executable, "-m", "datasette"]
    found = shutil.which("datasette")
    return [found] if found else None


COMMANDS: tuple[click.Command, ...] = (jobs, warnings, show, sessions, datasette_command)
QUERY_COMMANDS = COMMANDS  # the name the tests and scripts know
