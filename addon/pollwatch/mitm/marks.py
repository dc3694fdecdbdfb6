"""Marks and comments on flows: what mitmweb, the console and a saved flow file show of pollwatch's
findings (`pollwatch_annotate`)."""

from __future__ import annotations

from mitmproxy import http

from pollwatch.core.findings import Severity
from pollwatch.core.records import Update
from pollwatch.core.redact import safe_text

MARKS = {Severity.INFO: ":information_source:", Severity.WARNING: ":warning:", Severity.ERROR: ":no_entry:"}


def annotate(flow: http.HTTPFlow, update: Update) -> bool:
    """Comment a creating flow with its job, mark and comment a flow with findings by the worst of
    them; True when the flow changed."""
    notes = []
    if update.poll is not None and update.poll.kind == "create" and update.job is not None:
        notes.append(f"pollwatch: job {update.job.job_id} -> {update.job.status_url}")
    if update.findings:
        worst = max((f.severity for f in update.findings), key=lambda s: s.rank)
        flow.marked = MARKS[worst]
        notes += [f"pollwatch {f.severity.value}: {f.code}: {f.message}" for f in update.findings]
    if notes:
        flow.comment = "\n".join(filter(None, [flow.comment, *map(safe_text, notes)]))
    return bool(notes)
