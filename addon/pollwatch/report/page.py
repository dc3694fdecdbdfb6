"""A self-contained HTML report of a pollwatch database, meant to be attached to an incident.

One file, no network assets: CSS inline, every job's timeline an inline SVG, hover text as SVG
`<title>`, no JavaScript. Everything read from the database (URLs, messages, ids) is untrusted
and HTML-escaped. Large captures stay quick to open: only the most interesting jobs are drawn,
the rest are compact tables, healthy jobs collapsed.
"""

from __future__ import annotations

import html
import json
import math
import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pollwatch.errors import ReportError
from pollwatch import __version__
from pollwatch.core.findings import CATALOGUE
from pollwatch.store.query import open_database

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired", "unknown")
TERMINAL = ("succeeded", "failed", "cancelled", "expired")
OUTCOMES = (*TERMINAL, "non-terminal")
SEVERITIES = ("error", "warning", "info")
CACHED_BY = frozenset({"shared-cache", "client-cache", "browser-cache"})
"""`served_by` values meaning the client did not get a fresh answer from the origin."""
CACHEABLE = frozenset({"fresh", "heuristic"})
"""`cache_verdict` values meaning a cache may answer later polls by itself."""
DEFAULT_FULL = 100
MAX_MARKS = 1000
"""Poll marks drawn per job; beyond it, repeated unremarkable polls are thinned (the count says so)."""

ProgressFn = Callable[[int, int], None]
esc = html.escape



# --- reading ------------------------------------------------------------------------------------

@dataclass
class JobView:
    """One job's row with what the report needs next to it."""

    row: dict[str, Any]
    findings: list[dict[str, Any]]
    polls: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    anchor: str = ""

    @property
    def outcome(self) -> str:
        return self.row["terminal_state"] or "non-terminal"

    @property
    def states(self) -> list[str]:
        return json.loads(self.row["states"] or "[]")

    @property
    def codes(self) -> list[str]:
        return sorted({f["code"] for f in self.findings}, key=_code_order)

    def interest(self) -> tuple[int, int, int, float]:
        """Sort key, most interesting first: worst severity, distinct codes, occurrences, age."""
        worst = min((_severity_rank(f["severity"]) for f in self.findings), default=len(SEVERITIES))
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
    rows = [dict(r) for r in conn.execute(f"select * from jobs {job_where} order by created_at, key", job_args)]
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
    """Polls and transitions of `jobs`, a few queries per `chunk` jobs (SQLite caps parameters)."""
    for start in range(0, len(jobs), chunk):
        part = {j.row["key"]: j for j in jobs[start:start + chunk]}
        marks = ",".join("?" * len(part))
        for r in conn.execute(f"select {POLL_COLUMNS} from polls where job_key in ({marks}) "
                              "order by job_key, response_ts, id", list(part)):
            part[r["job_key"]].polls.append(dict(r))
        for r in conn.execute(f"select * from transitions where job_key in ({marks}) order by job_key, ts, id",
                              list(part)):
            part[r["job_key"]].transitions.append(dict(r))


# --- the whole page -----------------------------------------------------------------------------

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


def render(data: ReportData, chosen: Plan, on_progress: ProgressFn | None = None) -> str:
    """The complete HTML document."""
    total = len(chosen.to_draw)
    parts = [_head(data), _header(data), _summary(data), _legend()]
    parts.append(f'<section id="jobs"><h2>Jobs with findings ({len(chosen.drawn) + len(chosen.more)})</h2>')
    if not chosen.drawn:
        parts.append('<p class="muted">No job has a finding.</p>')
    for done, job in enumerate(chosen.drawn, 1):
        parts.append(_job_section(job))
        _progress(on_progress, done, total)
    if chosen.more:
        parts.append(f"<h3>{len(chosen.more)} more job(s) with findings, not drawn</h3>"
                     f'<p class="muted">Only the {len(chosen.drawn)} most serious jobs are drawn '
                     f"(raise <code>--full</code> to draw more).</p>{_job_table(chosen.more)}")
    parts.append("</section>")
    parts.append(_healthy(chosen, on_progress, total))
    parts.append(_orphans(data.orphans))
    parts.append(_reference(sorted({f["code"] for f in data.findings}, key=_code_order)))
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _healthy(chosen: Plan, on_progress: ProgressFn | None, total: int) -> str:
    count = len(chosen.healthy)
    if not count:
        return ""
    head = f'<section id="healthy"><details{" open" if not chosen.drawn and count <= 5 else ""}>' \
           f"<summary><h2>Healthy jobs ({count}) — no findings</h2></summary>"
    if not chosen.draw_healthy:
        return head + _job_table(chosen.healthy, codes=False) + "</details></section>"
    body = []
    for done, job in enumerate(chosen.healthy, len(chosen.drawn) + 1):
        body.append(_job_section(job))
        _progress(on_progress, done, total)
    return head + "".join(body) + "</details></section>"


def _progress(on_progress: ProgressFn | None, done: int, total: int) -> None:
    if on_progress is not None and (done % 25 == 0 or done == total):
        on_progress(done, total)


def write_report(db: str | Path, out: str | Path, *, session: str | None = None, job_prefix: str | None = None,
                 full: int = DEFAULT_FULL, on_progress: ProgressFn | None = None) -> ReportStats:
    """Read `db`, write the report to `out`. Raises StorageError/ReportError with one-line messages."""
    started = time.perf_counter()
    conn = open_database(db)
    try:
        data = load(conn, str(db), session=session, job_prefix=job_prefix)
        chosen = plan(data.jobs, max(full, 0))
        attach_timelines(conn, chosen.to_draw)
    finally:
        conn.close()
    text = render(data, chosen, on_progress)
    path = Path(out)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    return ReportStats(path=path, jobs=len(data.jobs), drawn=len(chosen.to_draw),
                       findings=sum(1 for _ in data.findings), bytes=len(text.encode()),
                       seconds=time.perf_counter() - started)


# --- page parts ---------------------------------------------------------------------------------

CSS = """
:root{--queued:#64748b;--running:#2563eb;--succeeded:#16a34a;--failed:#dc2626;--cancelled:#9333ea;
--expired:#b45309;--unknown:#db2777;--none:#d1d5db;--error:#dc2626;--warning:#d97706;--info:#0891b2}
*{box-sizing:border-box}
body{margin:0;background:#f8fafc;color:#1f2937;font:14px/1.45 system-ui,"Segoe UI",Roboto,"DejaVu Sans","Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:12px 20px 40px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;display:inline-block}h3{font-size:15px;margin:0}
code,.mono{font-family:"DejaVu Sans Mono","Liberation Mono",monospace;font-size:12.5px;word-break:break-all}
a{color:#1d4ed8}.muted{color:#6b7280}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e5e7eb;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f5f9}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td:first-child code{word-break:normal;white-space:nowrap}td.state{white-space:nowrap}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dl.meta dt{color:#6b7280}dl.meta dd{margin:0}
.bar{display:flex;height:18px;border-radius:4px;overflow:hidden;margin:6px 0;background:#e5e7eb}
.o-succeeded{background:var(--succeeded)}.o-failed{background:var(--failed)}.o-cancelled{background:var(--cancelled)}
.o-expired{background:var(--expired)}.o-non-terminal{background:repeating-linear-gradient(45deg,#94a3b8 0 4px,#cbd5e1 4px 8px)}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.outcomes span.item{margin-right:16px;white-space:nowrap}
.sev{display:inline-block;min-width:58px;text-align:center;border-radius:3px;color:#fff;font-size:12px;padding:0 5px}
.sev-error{background:var(--error)}.sev-warning{background:var(--warning)}.sev-info{background:var(--info)}
a.code{display:inline-block;border-left:4px solid var(--c);padding:0 6px;margin:1px 4px 1px 0;background:#f1f5f9;
border-radius:2px;font-family:"DejaVu Sans Mono","Liberation Mono",monospace;font-size:12px;text-decoration:none;color:#111827}
a.code.error{--c:var(--error)}a.code.warning{--c:var(--warning)}a.code.info{--c:var(--info)}
.job{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;margin:10px 0}
.job .facts{margin:2px 0;color:#374151}.job ul{margin:4px 0 0;padding-left:18px;font-size:13px}
.state{font-weight:600;color:var(--c)}
.s-queued{--c:var(--queued)}.s-running{--c:var(--running)}.s-succeeded{--c:var(--succeeded)}.s-failed{--c:var(--failed)}
.s-cancelled{--c:var(--cancelled)}.s-expired{--c:var(--expired)}.s-unknown{--c:var(--unknown)}.s-none{--c:var(--none)}
.s-non-terminal{--c:#475569}
svg.timeline{display:block;width:100%;height:auto;margin-top:4px}
svg text{font-family:"DejaVu Sans","Liberation Sans",sans-serif;font-size:12px;fill:#374151}
svg .axis line,svg .axis path{stroke:#9ca3af}svg .axis text{font-size:11px;fill:#6b7280}
svg .lane{stroke:#e5e7eb;stroke-width:1}
svg .mark{fill:var(--c);stroke:#fff;stroke-width:1.5}
svg .s-none .mark,svg .s-none.mark{stroke:#6b7280;stroke-width:1.2}
svg .cached .mark{fill:#fff;stroke:var(--c);stroke-width:3}
svg .ring{fill:none;stroke:#111827;stroke-width:1.6}
svg .cacheable .ring{stroke:#f59e0b;stroke-width:1.8;stroke-dasharray:3 2}
svg .create .mark{stroke:#111827;stroke-width:1.2}
svg .band{fill:var(--c);opacity:.85}
svg .transition line{stroke:var(--c);stroke-width:1.5;stroke-dasharray:4 2}svg .transition text{fill:var(--c);font-weight:600}
svg .finding.error{fill:var(--error)}svg .finding.warning{fill:var(--warning)}svg .finding.info{fill:var(--info)}
svg .finding{stroke:#fff;stroke-width:1}
svg .terminal rect{fill:var(--c);stroke:none}svg .terminal text{fill:#fff;font-weight:600}
svg .terminal.s-non-terminal rect{fill:#fff;stroke:#475569;stroke-width:1.5;stroke-dasharray:4 3}
svg .terminal.s-non-terminal text{fill:#475569}
.legend{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:4px 10px;margin-top:10px}
.ref dt{margin-top:10px}.ref dd{margin:2px 0 0 0}.ref .fix{color:#065f46}
details>summary{cursor:pointer;list-style-position:inside}details>summary h2{margin-top:20px}
@media print{details{display:block}}
"""


def _head(data: ReportData) -> str:
    title = f"pollwatch report — {Path(data.db).name}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<meta name=\"generator\" content=\"pollwatch {esc(__version__)}\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><main>")


def _header(data: ReportData) -> str:
    sessions = "".join(
        f"<tr><td><code>{esc(s['id'])}</code></td><td>{esc(s['source'] or '')}</td><td>{esc(s['label'] or '')}</td>"
        f"<td>{_when(s['started_at'])}</td><td>{_when(s['ended_at']) or 'still open'}</td>"
        f"<td>{esc(s['version'] or '')}</td></tr>" for s in data.sessions)
    scope = [f"session <code>{esc(data.session_filter)}</code>" if data.session_filter else "",
             f"jobs whose id starts with <code>{esc(data.job_filter)}</code>" if data.job_filter else ""]
    polls = sum(j.row["polls"] or 0 for j in data.jobs)
    return (f"<header><h1>pollwatch report</h1><dl class=\"meta\">"
            f"<dt>database</dt><dd><code>{esc(str(Path(data.db).resolve()))}</code></dd>"
            f"<dt>generated</dt><dd>{_when(data.generated_at)} by pollwatch {esc(__version__)}</dd>"
            f"<dt>scope</dt><dd>{' and '.join(s for s in scope if s) or 'everything in the database'}</dd>"
            f"<dt>contents</dt><dd>{len(data.sessions)} session(s), {len(data.jobs)} job(s), {polls} poll(s), "
            f"{sum(1 for _ in data.findings)} finding(s)</dd></dl>"
            f"<details><summary>sessions</summary><table><tr><th>session</th><th>source</th><th>label</th>"
            f"<th>started</th><th>ended</th><th>version</th></tr>{sessions}</table></details></header>")


def _summary(data: ReportData) -> str:
    outcomes = Counter(j.outcome for j in data.jobs)
    total = max(len(data.jobs), 1)
    bar = "".join(f'<span class="o-{o}" style="flex:{outcomes[o]}" title="{o}: {outcomes[o]}"></span>'
                  for o in OUTCOMES if outcomes[o])
    items = "".join(f'<span class="item"><span class="swatch o-{o}"></span>{o} <b>{outcomes[o]}</b> '
                    f'<span class="muted">({outcomes[o] / total:.0%})</span></span>' for o in OUTCOMES)
    return (f'<section id="summary"><h2>Summary</h2><h3>Jobs by outcome</h3><div class="bar">{bar}</div>'
            f'<div class="outcomes">{items}</div><h3 style="margin-top:14px">Findings by code</h3>'
            f"{_findings_table(data)}</section>")


def _findings_table(data: ReportData) -> str:
    occurrences: Counter[str] = Counter()
    jobs: dict[str, set[str]] = defaultdict(set)
    severity: dict[str, str] = {}
    for f in data.findings:
        occurrences[f["code"]] += f["count"] or 1
        severity[f["code"]] = f["severity"]
        if f["job_key"]:
            jobs[f["code"]].add(f["job_key"])
    if not occurrences:
        return '<p class="muted">No findings: every job was polled cleanly.</p>'
    rows = "".join(
        f"<tr><td>{_severity_badge(severity[c])}</td><td>{_code_link(c, severity[c])}</td>"
        f"<td>{esc(_title(c))}</td><td class=\"n\">{len(jobs[c])}</td><td class=\"n\">{occurrences[c]}</td></tr>"
        for c in sorted(occurrences, key=lambda c: (_severity_rank(severity[c]), -occurrences[c], c)))
    return (f"<table><tr><th>severity</th><th>code</th><th>what</th><th class='n'>jobs</th><th class='n'>occurrences</th></tr>"
            f"{rows}</table>")


def _job_section(job: JobView) -> str:
    row = job.row
    states = " → ".join(f'<span class="state s-{_state_class(s)}">{esc(s)}</span>' for s in job.states) or "no state"
    severity = {f["code"]: f["severity"] for f in job.findings}
    codes = "".join(_code_link(c, severity[c]) for c in job.codes)
    findings = "".join(_finding_item(f) for f in job.findings)
    return (f'<section class="job" id="{job.anchor}" data-key="{esc(row["key"])}"><h3>job <code>{esc(row["job_id"])}</code> '
            f'<span class="state s-{_state_class(job.outcome)}">{esc(job.outcome)}</span></h3>'
            f'<div class="facts">status URL <code>{esc(row["status_url"] or "none")}</code></div>'
            f'<div class="facts">{states} · {row["polls"] or 0} poll(s) over {_duration(job)}'
            f' · created {_when(row["created_at"])}</div>'
            f'{f"<div class=facts>{codes}</div>" if codes else ""}{_timeline(job)}'
            f'{f"<ul>{findings}</ul>" if findings else ""}</section>')


def _finding_item(f: dict[str, Any]) -> str:
    times = f' <span class="muted">(×{f["count"]})</span>' if (f["count"] or 1) > 1 else ""
    return f"<li>{_code_link(f['code'], f['severity'])} {esc(f['message'] or '')}{times}</li>"


def _job_table(jobs: Sequence[JobView], *, codes: bool = True) -> str:
    """Compact rows for jobs not drawn: cheap enough for thousands."""
    rows = []
    for job in jobs:
        severity = {f["code"]: f["severity"] for f in job.findings}
        links = f"<td>{''.join(_code_link(c, severity[c]) for c in job.codes)}</td>" if codes else ""
        rows.append(f"<tr><td><code>{esc(job.row['job_id'])}</code></td><td><code>{esc(job.row['status_url'] or '')}"
                    f"</code></td><td>{esc(' → '.join(job.states))}</td>"
                    f'<td class="state s-{_state_class(job.outcome)}">{esc(job.outcome)}</td>'
                    f'<td class="n">{job.row["polls"] or 0}</td><td class="n">{_duration(job)}</td>{links}</tr>')
    return ("<table><tr><th>job</th><th>status URL</th><th>states</th><th>outcome</th><th class='n'>polls</th>"
            f"<th class='n'>duration</th>{'<th>findings</th>' if codes else ''}</tr>{''.join(rows)}</table>")


def _orphans(findings: Sequence[dict[str, Any]]) -> str:
    if not findings:
        return ""
    rows = "".join(f"<tr><td>{_when(f['ts'])}</td><td>{_severity_badge(f['severity'])}</td>"
                   f"<td>{_code_link(f['code'], f['severity'])}</td><td>{esc(f['message'] or '')}</td></tr>"
                   for f in findings)
    return (f'<section id="orphans"><h2>Findings not tied to a job ({len(findings)})</h2><table><tr><th>time</th>'
            f"<th>severity</th><th>code</th><th>message</th></tr>{rows}</table></section>")


def _reference(codes: Iterable[str]) -> str:
    entries = []
    for code in codes:
        kind = CATALOGUE.get(code)
        if kind is None:
            entries.append(f'<dt id="{_code_anchor(code)}"><code>{esc(code)}</code></dt>'
                           f"<dd>Not known to pollwatch {esc(__version__)} (written by another version).</dd>")
            continue
        entries.append(f'<dt id="{_code_anchor(code)}">{_severity_badge(kind.severity.value)} <code>{esc(code)}</code> '
                       f"— <b>{esc(kind.title)}</b></dt><dd>{_prose(kind.meaning)}</dd>"
                       f'<dd class="fix"><b>Fix:</b> {_prose(kind.fix)}</dd>')
    if not entries:
        return ""
    return (f'<section id="reference"><h2>Findings reference</h2><dl class="ref">{"".join(entries)}</dl>'
            "</section>")


def _prose(text: str) -> str:
    """Catalogue text with `backticks` as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


# --- the timeline picture -----------------------------------------------------------------------

WIDTH, HEIGHT = 1200, 138
PLOT_LEFT, PLOT_RIGHT = 24, 1040
BADGE_X = 1062
LABEL_ROWS = (14, 29)
MIN_SPAN = 1.0
"""Seconds: a job seen only once still gets a readable axis."""
FINDING_Y, POLL_Y, BAND_Y, AXIS_Y = 56, 78, 96, 110


@dataclass
class Scale:
    """Seconds since job creation to x."""

    t0: float
    span: float

    def x(self, ts: float | None) -> float:
        offset = min(max((ts or self.t0) - self.t0, 0.0), self.span)
        return PLOT_LEFT + offset / self.span * (PLOT_RIGHT - PLOT_LEFT)


def _scale(job: JobView) -> Scale:
    t0 = job.row["created_at"] or min((p["response_ts"] for p in job.polls), default=0.0)
    ends = [p["response_ts"] for p in job.polls] + [t["ts"] for t in job.transitions] + [job.row["terminal_at"] or t0]
    return Scale(t0, max(max(ends, default=t0) - t0, MIN_SPAN) * 1.02)


def _timeline(job: JobView) -> str:
    scale = _scale(job)
    marks = _thin(job.polls, MAX_MARKS)
    xs = {p["flow_id"]: scale.x(p["response_ts"]) for p in job.polls}
    note = (f'<text x="{PLOT_LEFT}" y="{HEIGHT - 2}" class="muted">{len(marks)} of {len(job.polls)} exchanges drawn '
            f"(repeated polls thinned)</text>" if len(marks) < len(job.polls) else "")
    body = "".join((_axis(scale), f'<line class="lane" x1="{PLOT_LEFT}" y1="{POLL_Y}" x2="{PLOT_RIGHT}" y2="{POLL_Y}"/>',
                    _bands(job, scale), _transitions(job, scale), "".join(_mark(p, scale, job.row["status_url"]) for p in marks),
                    _finding_marks(job, xs), _terminal(job), note))
    return (f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="timeline of job {esc(job.row["job_id"])}">{body}</svg>')


def _thin(polls: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """About `limit` marks: every exchange worth seeing (creation, cache, state change, non-2xx)
    stays, the remaining room is spread evenly over the repeats."""
    if len(polls) <= limit:
        return polls
    keep, plain, previous = [], [], None
    for p in polls:
        notable = (p["kind"] == "create" or p["served_by"] in CACHED_BY or p["cache_verdict"] in CACHEABLE
                   or p["state"] != previous or not (200 <= (p["status"] or 0) < 300))
        (keep if notable else plain).append(p)
        previous = p["state"]
    room = max(limit - len(keep), 0)
    step = len(plain) / room if room else math.inf
    keep += [plain[int(i * step)] for i in range(room)] if room else []
    return sorted(keep, key=lambda p: p["response_ts"])


def _axis(scale: Scale) -> str:
    step = _nice_step(scale.span / 10)
    ticks = []
    for i in range(int(scale.span / step) + 1):
        x = scale.x(scale.t0 + i * step)
        ticks.append(f'<line x1="{x:.1f}" y1="{AXIS_Y}" x2="{x:.1f}" y2="{AXIS_Y + 4}"/>'
                     f'<text x="{x:.1f}" y="{AXIS_Y + 16}" text-anchor="middle">{_seconds(i * step)}</text>')
    return (f'<g class="axis"><line x1="{PLOT_LEFT}" y1="{AXIS_Y}" x2="{PLOT_RIGHT}" y2="{AXIS_Y}"/>{"".join(ticks)}'
            f'<text x="{WIDTH - 4}" y="{AXIS_Y + 16}" text-anchor="end">seconds since creation</text></g>')


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _bands(job: JobView, scale: Scale) -> str:
    """A thin bar under the polls: the state the job was in, from one transition to the next."""
    if not job.transitions:
        return ""
    end = max([p["response_ts"] for p in job.polls] + [t["ts"] for t in job.transitions])
    out = []
    for t, nxt in zip(job.transitions, [*job.transitions[1:], None], strict=True):
        x1, x2 = scale.x(t["ts"]), scale.x(nxt["ts"] if nxt else end)
        out.append(_band_shape(x1, BAND_Y, max(x2 - x1, 2), _state_class(t["to_state"]), esc(t["to_state"])))
    return "".join(out)


def _transitions(job: JobView, scale: Scale) -> str:
    """Vertical ticks where the state changed, labelled with the new state; labels that would
    overlap go to a second row, then only the tooltip tells."""
    free = [float("-inf")] * len(LABEL_ROWS)
    out = []
    for t in job.transitions:
        x = scale.x(t["ts"])
        row = next((i for i, edge in enumerate(free) if x > edge), None)
        label = ""
        if row is not None:
            free[row] = x + 7.2 * len(t["to_state"]) + 8
            label = f'<text x="{x + 3:.1f}" y="{LABEL_ROWS[row]}">{esc(t["to_state"])}</text>'
        top = LABEL_ROWS[-1 if row is None else row] + 4
        tip = f'{esc(t["from_state"] or "start")} → {esc(t["to_state"])} at +{_seconds(t["ts"] - scale.t0)}'
        out.append(_tick_shape(x, top, BAND_Y + 6, _state_class(t["to_state"]), label, tip))
    return "".join(out)


def _mark(p: dict[str, Any], scale: Scale, status_url: str | None) -> str:
    """One exchange: the creation or a poll, with what kind of answer it was."""
    x, state, tip = scale.x(p["response_ts"]), _state_class(p["state"]), _poll_tip(p, scale, status_url)
    if p["kind"] == "create":
        return _create_shape(x, POLL_Y, state, tip)
    ring = "cached" if p["served_by"] in CACHED_BY else "cacheable" if p["cache_verdict"] in CACHEABLE else None
    return _poll_shape(x, POLL_Y, state, ring, tip)


def _poll_tip(p: dict[str, Any], scale: Scale, status_url: str | None) -> str:
    """Hover text; the URL only when the poll did not use the job's status URL."""
    state = p["state"] or "no state"
    raw = f" ({p['raw_state']})" if p["raw_state"] and p["raw_state"] != p["state"] else ""
    lifetime = f" {p['freshness_lifetime']:g} s" if p["freshness_lifetime"] else ""
    return esc(f"{p['kind']} {p['method']} {p['status'] or 'no response'} · {state}{raw} · "
               f"+{_seconds(p['response_ts'] - scale.t0)} · served by {p['served_by']} · cache {p['cache_verdict']}"
               f"{lifetime}" + (f" · client {p['client']}" if p["client"] else "")
               + (f"\n{p['url']}" if p["url"] != status_url else ""))


def _finding_marks(job: JobView, xs: dict[str, float]) -> str:
    """A symbol per finding above the poll it belongs to (stacked, worst lowest), linked to its
    reference entry; findings of no drawn poll (e.g. polling-abandoned) go to the end."""
    stack: Counter[str] = Counter()
    out = []
    for f in sorted(job.findings, key=lambda f: _severity_rank(f["severity"])):
        where = f["flow_id"] if f["flow_id"] in xs else "end"
        x, y = xs.get(where, PLOT_RIGHT + 10), FINDING_Y - 13 * stack[where]
        stack[where] += 1
        tip = f"{esc(f['severity'])} {esc(f['code'])}: {esc(f['message'] or '')}"
        out.append(f'<a href="#{_code_anchor(f["code"])}">{_finding_shape(x, y, _sev_class(f["severity"]), tip)}</a>')
    return "".join(out)


def _terminal(job: JobView) -> str:
    state = job.row["terminal_state"]
    label = esc(state or f"no end ({job.row['last_state'] or 'no state'})")
    cls = _state_class(state) if state else "non-terminal"
    return (f'<g class="terminal s-{cls}"><rect x="{BADGE_X}" y="{POLL_Y - 12}" width="{WIDTH - BADGE_X - 4}" '
            f'height="24" rx="5"/><text x="{(BADGE_X + WIDTH - 4) / 2:.0f}" y="{POLL_Y + 4}" text-anchor="middle">'
            f"{label}</text><title>final state: {label}</title></g>")


# --- shapes, shared by the timelines and the legend (tips and labels arrive escaped) -----------

SYMBOLS = {"error": "M0,-6 L6,0 L0,6 L-6,0Z", "warning": "M0,-6 L6,5 L-6,5Z"}
"""Finding symbols: an error is a diamond, a warning a triangle, info a dot."""


def _tip(text: str) -> str:
    return f"<title>{text}</title>" if text else ""


def _poll_shape(x: float, y: float, state: str, ring: str | None, tip: str = "") -> str:
    """A disc in the state's colour; `cached` makes it hollow with a black ring, `cacheable`
    adds a dashed amber ring."""
    if ring is None:
        return f'<circle class="poll mark s-{state}" cx="{x:.1f}" cy="{y}" r="6">{_tip(tip)}</circle>'
    return (f'<g class="poll {ring} s-{state}"><circle class="ring" cx="{x:.1f}" cy="{y}" r="9.5"/>'
            f'<circle class="mark" cx="{x:.1f}" cy="{y}" r="5"/>{_tip(tip)}</g>')


def _create_shape(x: float, y: float, state: str, tip: str = "") -> str:
    return (f'<g class="create s-{state}"><rect class="mark" x="{x - 6:.1f}" y="{y - 6}" width="12" '
            f'height="12"/>{_tip(tip)}</g>')


def _finding_shape(x: float, y: float, severity: str, tip: str = "") -> str:
    path = SYMBOLS.get(severity)
    symbol = (f'<path d="{path}" transform="translate({x:.1f},{y})"/>' if path
              else f'<circle cx="{x:.1f}" cy="{y}" r="5.5"/>')
    return f'<g class="finding {severity}">{symbol}{_tip(tip)}</g>'


def _tick_shape(x: float, top: float, bottom: float, state: str, label: str = "", tip: str = "") -> str:
    return (f'<g class="transition s-{state}"><line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>'
            f"{label}{_tip(tip)}</g>")


def _band_shape(x: float, y: float, width: float, state: str, tip: str = "") -> str:
    return f'<rect class="band s-{state}" x="{x:.1f}" y="{y}" width="{width:.1f}" height="6">{_tip(tip)}</rect>'


# --- the legend ---------------------------------------------------------------------------------

Shape = Callable[[float, float], str]


def _legend() -> str:
    """One explanatory picture drawn with the very shapes of the timelines."""
    states = [(partial(_poll_shape, state=_state_class(s), ring=None), s or "no state") for s in (*STATES, None)]
    marks = [
        (partial(_create_shape, state="queued"), "creation (202)"),
        (partial(_poll_shape, state="running", ring=None), "poll answered by the server"),
        (partial(_poll_shape, state="queued", ring="cached"), "served by a cache (shared, 304, browser)"),
        (partial(_poll_shape, state="running", ring="cacheable"), "cacheable (fresh / heuristic)"),
    ]
    meaning = [
        (lambda x, y: _tick_shape(x, y - 9, y + 9, "succeeded"), "state change"),
        (lambda x, y: _band_shape(x - 9, y - 3, 18, "running"), "state over time"),
        *((partial(_finding_shape, severity=s), f"{s} finding") for s in SEVERITIES),
        (lambda x, y: "", "hover a mark for details; click a finding for its fix"),
    ]
    rows = "".join(_legend_row(entries, y) for entries, y in ((states, 18), (marks, 48), (meaning, 78)))
    return (f'<section class="legend" id="legend"><svg class="timeline" viewBox="0 0 {WIDTH} 94" role="img" '
            f'aria-label="legend">{rows}</svg></section>')


def _legend_row(entries: Sequence[tuple[Shape, str]], y: int) -> str:
    out, x = [], 12.0
    for shape, text in entries:
        out.append(f'{shape(x, y)}<text x="{x + 16:.0f}" y="{y + 4}">{esc(text)}</text>')
        x += 44 + 7.2 * len(text)
    return "".join(out)


# --- small helpers ------------------------------------------------------------------------------

def _state_class(state: str | None) -> str:
    """A CSS class for a state; anything unexpected from the database is `unknown`."""
    if state is None:
        return "none"
    return state if state in STATES or state == "non-terminal" else "unknown"


def _sev_class(severity: str | None) -> str:
    return severity if severity in SEVERITIES else "info"


def _severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _code_order(code: str) -> tuple[int, str]:
    kind = CATALOGUE.get(code)
    return (_severity_rank(kind.severity.value) if kind else len(SEVERITIES), code)


def _code_anchor(code: str) -> str:
    return "code-" + re.sub(r"[^a-z0-9-]", "_", code.lower())


def _code_link(code: str, severity: str | None) -> str:
    return f'<a class="code {_sev_class(severity)}" href="#{_code_anchor(code)}">{esc(code)}</a>'


def _severity_badge(severity: str | None) -> str:
    return f'<span class="sev sev-{_sev_class(severity)}">{esc(severity or "?")}</span>'


def _title(code: str) -> str:
    kind = CATALOGUE.get(code)
    return kind.title if kind else "(unknown code)"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z") if ts else ""


def _seconds(value: float) -> str:
    """Seconds to three significant digits, no trailing zeros (`0.3 s`, `12.5 s`, `240 s`)."""
    return f"{value:.0f} s" if value >= 100 else f"{float(f'{value:.3g}'):g} s"


def _duration(job: JobView) -> str:
    end = job.row["terminal_at"] or job.row["last_poll_at"]
    return _seconds(max(end - job.row["created_at"], 0.0)) if end and job.row["created_at"] else "0 s"
