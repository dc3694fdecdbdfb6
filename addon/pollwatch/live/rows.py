"""The tracker's copies (`board.Seen`) in the JSON shapes of `pollwatch jobs --format json` and
`pollwatch warnings --format json` (store/query.py's `list_jobs` and `list_findings`), and the
view's filters.

A job the writer has not flushed yet exists only on the board; it is shown in the same shape as
the database's rows, its texts made safe by the very function the store applies
(`core.redact.safe_value`), so the view never shows what the database would not hold.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pollwatch.core.findings import CATALOGUE, Finding
from pollwatch.core.records import as_dict
from pollwatch.core.redact import safe_value
from pollwatch.live.board import Seen
from pollwatch.report.timeline import code_anchor
from pollwatch.store.query import SEVERITIES

FINDING_FIELDS = ("findings", "codes", "findings_by_severity")
"""Fields of a job row that count its findings: the database's, once it has the job (it holds
every finding; the tracker's copy only the once-per-job ones)."""


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the store writes them: every text made safe."""
    return {key: safe_value(value, key) for key, value in values.items()}


def codes_of(seen: Seen) -> list[str]:
    """The job's finding codes, sorted, each once (as the `codes` of a job row)."""
    return sorted({f.code for f in seen.findings})


def job_row(seen: Seen, session_id: str, now: float | None = None) -> dict[str, Any]:
    """A job from the tracker, shaped like a row of `pollwatch jobs --format json`."""
    job = _stored(as_dict(seen.job))
    findings = unique(seen.findings)
    severities = Counter(f.severity.value for f in findings)
    idle = None  # as the stuck_jobs view: only a job without a terminal state is idle
    if job["terminal_state"] is None:
        idle = round((time.time() if now is None else now) - (job["last_poll_at"] or job["created_at"]), 3)
    return {
        "job_id": job["job_id"], "status_url": job["status_url"], "host": job["host"], "created_at": job["created_at"],
        "states": job["states"], "terminal_state": job["terminal_state"], "polls": job["polls"],
        "last_state": job["last_state"], "polls_after_terminal": job["polls_after_terminal"],
        "created_by": job["created_by"], "findings": len(findings), "session_id": session_id, "key": job["key"],
        "terminal_at": job["terminal_at"], "last_poll_at": job["last_poll_at"],
        "codes": codes_of(seen),
        "findings_by_severity": {s: severities[s] for s in SEVERITIES},
        "idle_seconds": idle,
    }


def fresher(row: dict[str, Any], seen: Seen, session_id: str, now: float | None = None) -> dict[str, Any]:
    """A database row with the tracker's newer word on the job itself (state, polls, times);
    the finding counts, and any field the tracker's row lacks, stay the database's."""
    live = job_row(seen, session_id, now)
    return row | {field: value for field, value in live.items() if field not in FINDING_FIELDS}


def finding_row(finding: Finding, session_id: str) -> dict[str, Any]:
    """A finding from the tracker, shaped like a row of `pollwatch warnings --format json`."""
    f = _stored(finding.model_dump())
    return {"code": f["code"], "severity": finding.severity.value, "job_id": f["job_id"], "ts": f["ts"],
            "message": f["message"], "count": f["count"], "flow_id": f["flow_id"], "evidence": f["evidence"],
            "session_id": session_id, "job_key": f["job_key"]}


def explanations(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the catalogue says about each code among `findings` (rows of either shape): its
    title and fix, and the anchor the timeline's finding marks link to. Kept beside the rows, so
    the rows keep exactly the CLI's fields."""
    out = {}
    for code in sorted({f["code"] for f in findings}):
        kind = CATALOGUE.get(code)
        out[code] = {"title": kind.title if kind else None, "fix": kind.fix if kind else None,
                     "severity": kind.severity.value if kind else None, "anchor": code_anchor(code)}
    return out


def unique(findings: tuple[Finding, ...]) -> list[Finding]:
    """Each finding once (the tracker may hold one under several names)."""
    return list({f.key: f for f in findings}.values())


@dataclass(frozen=True)
class Filters:
    """What the view's list is narrowed to; each filter means what the CLI's option of that name
    means (`pollwatch jobs --state/--code/--host`), and `q` is a part of the job id."""

    state: str | None = None
    code: str | None = None
    host: str | None = None
    q: str | None = None

    def matches(self, seen: Seen) -> bool:
        """For the tracker's copies (tested on what the store would write: texts made safe)."""
        job = seen.job
        return ((self.state is None or job.last_state == self.state)
                and (self.code is None or any(f.code == self.code for f in seen.findings))
                and (self.host is None or self.host.lower() in safe_value(job.host, "host").lower())
                and (self.q is None or self.q.lower() in safe_value(job.job_id, "job_id").lower()))

    def sql(self) -> tuple[str, list[Any]]:
        """The same, as conditions on the `jobs` table (alias `j`), each starting with ` and`."""
        clauses, args = [], []
        for value, clause in ((self.state, "j.last_state = ?"),
                              (self.code, "j.key in (select f.job_key from findings f where f.code = ?)"),
                              (self.host, "instr(lower(j.host), lower(?)) > 0"),
                              (self.q, "instr(lower(j.job_id), lower(?)) > 0")):
            if value is not None:
                clauses.append(f" and {clause}")
                args.append(value)
        return "".join(clauses), args
