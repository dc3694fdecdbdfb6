"""The HTML page of `pollwatch report`: one self-contained file, meant to be attached to an incident.

No network assets: the stylesheet (style.css, shipped with the package) is inlined, every drawn
job's timeline is an inline SVG (see `pollwatch.report.timeline`), no JavaScript. Everything
read from the database (URLs, messages, ids) is untrusted and HTML-escaped. Large captures stay
quick to open: only the most interesting jobs are drawn, the rest are compact tables, healthy
jobs collapsed. This module lays the page out; `pollwatch.report.data` reads the database.
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pollwatch import __version__
from pollwatch.core.findings import CATALOGUE
from pollwatch.errors import ReportError
from pollwatch.files import atomic_output, check_output
from pollwatch.report.data import (
    CHECK_FOUND,
    OUTCOMES,
    JobView,
    Plan,
    ReportData,
    ReportStats,
    attach_timelines,
    code_order,
    load,
    plan,
    severity_class,
    severity_rank,
    state_class,
)
from pollwatch.report.timeline import code_anchor, job_timeline, legend, seconds
from pollwatch.store.query import worker_transitions
from pollwatch.store.reading import open_database

DEFAULT_FULL = 100
HEALTHY_LISTED = 1000
"""Healthy jobs listed in the collapsed table (the newest); the rest are counted, not listed."""
MAX_MARKS = 1000
"""Poll marks drawn per job; beyond it, repeated unremarkable polls are thinned (the count says so)."""
STYLESHEET = "style.css"

ProgressFn = Callable[[int, int], None]
esc = html.escape


@cache
def stylesheet() -> str:
    """The shipped CSS, read once (from the source tree in an editable install)."""
    return resources.files(__package__).joinpath(STYLESHEET).read_text(encoding="utf-8")


# --- the whole page -----------------------------------------------------------------------------

def render(data: ReportData, chosen: Plan, on_progress: ProgressFn | None = None) -> str:
    """The complete HTML document."""
    total = len(chosen.to_draw)
    parts = [_head(data), _header(data), _summary(data), legend()]
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
    parts.append(_reference(sorted({f["code"] for f in data.findings}, key=code_order)))
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _healthy(chosen: Plan, on_progress: ProgressFn | None, total: int) -> str:
    count = len(chosen.healthy)
    if not count:
        return ""
    head = f'<section id="healthy"><details{" open" if not chosen.drawn and count <= 5 else ""}>' \
           f"<summary><h2>Healthy jobs ({count}) — no findings</h2></summary>"
    if not chosen.draw_healthy:
        listed = chosen.healthy[-HEALTHY_LISTED:]
        more = (f'<p class="muted">The newest {len(listed)} are listed; {count - len(listed)} older healthy job(s) '
                f"are not (<code>pollwatch jobs --limit 0</code> lists every job).</p>") if count > len(listed) else ""
        return head + more + _job_table(listed, codes=False) + "</details></section>"
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
    check_output(out, ReportError)  # a FIFO or a device is refused before any work
    conn = open_database(db)
    try:
        data = load(conn, str(db), session=session, job_prefix=job_prefix)
        chosen = plan(data.jobs, max(full, 0))
        attach_timelines(conn, chosen.to_draw)
    finally:
        conn.close()
    text = render(data, chosen, on_progress)
    path = Path(out)
    with atomic_output(path, ReportError, "the report") as temporary:  # a full disk leaves the old file
        temporary.write_text(text, encoding="utf-8")
    return ReportStats(path=path, jobs=len(data.jobs), drawn=len(chosen.to_draw),
                       findings=sum(1 for _ in data.findings), bytes=len(text.encode()),
                       seconds=time.perf_counter() - started)


# --- page parts ---------------------------------------------------------------------------------

def _head(data: ReportData) -> str:
    title = f"pollwatch report — {Path(data.db).name}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<meta name=\"generator\" content=\"pollwatch {esc(__version__)}\"><title>{esc(title)}</title>"
            f"<style>\n{stylesheet()}</style></head><body><main>")


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
        for c in sorted(occurrences, key=lambda c: (severity_rank(severity[c]), -occurrences[c], c)))
    return (f"<table><tr><th>severity</th><th>code</th><th>what</th><th class='n'>jobs</th><th class='n'>occurrences</th></tr>"
            f"{rows}</table>")


def _job_section(job: JobView) -> str:
    row = job.row
    states = " → ".join(f'<span class="state s-{state_class(s)}">{esc(s)}</span>' for s in job.states) or "no state"
    severity = {f["code"]: f["severity"] for f in job.findings}
    codes = "".join(_code_link(c, severity[c]) for c in job.codes)
    findings = "".join(_finding_item(f) for f in job.findings)
    return (f'<section class="job" id="{job.anchor}" data-key="{esc(row["key"])}"><h3>job <code>{esc(row["job_id"])}</code> '
            f'<span class="state s-{state_class(job.outcome)}">{esc(job.outcome)}</span></h3>'
            f'<div class="facts">status URL <code>{esc(row["status_url"] or "none")}</code></div>'
            f'<div class="facts">{states} · {row["polls"] or 0} poll(s) over {_duration(job)}'
            f' · created {_when(row["created_at"])}</div>'
            f'{f"<div class=facts>{codes}</div>" if codes else ""}{job_timeline(job, MAX_MARKS)}'
            f'{f"<ul>{findings}</ul>" if findings else ""}{_worker_table(job)}{_checks_table(job)}</section>')


def _worker_table(job: JobView) -> str:
    """The worker's transitions next to the client's, merged on the job's time axis, under one
    line saying how long the client stayed behind the worker's end."""
    if not job.worker:
        return ""
    t0 = job.row["created_at"] or job.worker[0]["ts"]
    rows = [(t["ts"] - t0, _change(t["from_state"], t["to_state"]), "") for t in job.transitions]
    rows += [(w["offset_s"], "", f'{_change(w["from"], w["to"])} <span class="muted">{esc(w["source"] or "")}</span>')
             for w in worker_transitions(job.worker)]
    body = "".join(f'<tr><td class="n">{_signed(at)}</td><td>{client}</td><td>{worker}</td></tr>'
                   for at, client, worker in sorted(rows, key=lambda r: r[0]))
    return (f'<div class="facts worker-facts">{_behind_line(job)}</div><table class="transitions"><tr>'
            f'<th class="n">at</th><th>client saw</th><th>worker logged</th></tr>{body}</table>')


def _behind_line(job: JobView) -> str:
    """The gap in words: when the worker ended, and what the client was still told after that."""
    end = job.worker_end
    count = f"{len(job.worker)} worker log event(s)"
    if end is None:
        return f"{count}; the worker logged no end"
    t0 = job.row["created_at"] or end["ts"]
    line = (f'{count}; the worker logged <span class="state s-{state_class(end["state"])}">{esc(end["state"])}</span>'
            f" at {_signed(end['ts'] - t0)}")
    behind = job.behind_worker
    if not behind:
        return line
    return (f'{line}; <b class="behind">the client was told a non-terminal state {len(behind)} time(s) after that</b>, '
            f"until {_signed(behind[-1]['response_ts'] - t0)}")


def _change(before: str | None, after: str | None) -> str:
    """`from → to`, each state in its colour."""
    shown = [f'<span class="state s-{state_class(s)}">{esc(s)}</span>' for s in (before, after) if s]
    return " → ".join(["start", *shown] if before is None else shown)


def _checks_table(job: JobView) -> str:
    """What pollwatch itself sent to the origin for this job (pollwatch_verify), and what came back."""
    if not job.checks:
        return ""
    t0 = job.row["created_at"] or job.checks[0]["sent_at"]
    rows = []
    for c in job.checks:
        detail = f' <span class="muted">({esc(c["detail"])})</span>' if c["detail"] else ""
        rows.append(f'<tr><td class="n">+{seconds(max(c["sent_at"] - t0, 0.0))}</td><td>{esc(c["reason"] or "")}</td>'
                    f'<td><code>GET {esc(c["url"] or "")}</code></td>'
                    f'<td>{_check_side(c["client_state"], c["client_etag"])}</td>'
                    f'<td>{esc(str(c["status"] or "-"))} {_check_side(c["origin_state"], c["origin_etag"])}</td>'
                    f'<td>{esc(c["result"] or "")}{detail}</td></tr>')
    found = any(c["result"] in CHECK_FOUND for c in job.checks)  # open when a check raised a finding
    return (f'<details{" open" if found else ""}><summary>{len(job.checks)} origin check(s) pollwatch sent '
            f'(GET, Cache-Control: no-cache, '
            f'X-Pollwatch-Check: 1)</summary><table><tr><th class="n">at</th><th>why</th><th>request</th>'
            f"<th>client had</th><th>origin says</th><th>result</th></tr>{''.join(rows)}</table></details>")


def _check_side(state: str | None, etag: str | None) -> str:
    shown = f'<span class="state s-{state_class(state)}">{esc(state)}</span>' if state else "-"
    return shown + (f" <code>{esc(etag)}</code>" if etag else "")


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
                    f'<td class="state s-{state_class(job.outcome)}">{esc(job.outcome)}</td>'
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
            entries.append(f'<dt id="{code_anchor(code)}"><code>{esc(code)}</code></dt>'
                           f"<dd>Not known to pollwatch {esc(__version__)} (written by another version).</dd>")
            continue
        entries.append(f'<dt id="{code_anchor(code)}">{_severity_badge(kind.severity.value)} <code>{esc(code)}</code> '
                       f"— <b>{esc(kind.title)}</b></dt><dd>{_prose(kind.meaning)}</dd>"
                       f'<dd class="fix"><b>Fix:</b> {_prose(kind.fix)}</dd>')
    if not entries:
        return ""
    return (f'<section id="reference"><h2>Findings reference</h2><dl class="ref">{"".join(entries)}</dl>'
            "</section>")


def _prose(text: str) -> str:
    """Catalogue text with `backticks` as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


# --- small helpers ------------------------------------------------------------------------------

def _code_link(code: str, severity: str | None) -> str:
    return f'<a class="code {severity_class(severity)}" href="#{code_anchor(code)}">{esc(code)}</a>'


def _severity_badge(severity: str | None) -> str:
    return f'<span class="sev sev-{severity_class(severity)}">{esc(severity or "?")}</span>'


def _title(code: str) -> str:
    kind = CATALOGUE.get(code)
    return kind.title if kind else "(unknown code)"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z") if ts else ""


def _signed(offset: float) -> str:
    """An offset on the job's axis, signed (a worker may log before the proxy saw the creation)."""
    return f"{'-' if offset < 0 else '+'}{seconds(abs(offset))}"


def _duration(job: JobView) -> str:
    end = job.row["terminal_at"] or job.row["last_poll_at"]
    return seconds(max(end - job.row["created_at"], 0.0)) if end and job.row["created_at"] else "0 s"
