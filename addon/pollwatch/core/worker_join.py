"""Which job a worker event belongs to: by job id, or by an operation/request/trace id the proxy
saw on the job's exchanges.

One index serves the live proxy (jobs and events arrive interleaved) and the offline recompute
(everything known at once), so both join the same way. Job ids repeat across sessions and
servers: an event goes to the job of that id created last before it; only when there is none,
to the first created within a little slack after it (the worker logging `queued` before the 202
reached the proxy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pollwatch.core.worker import WorkerEvent, trace_id_of

CREATION_SLACK = 5.0
"""Seconds a worker event may precede its job's creation as the proxy saw it."""


@dataclass(frozen=True)
class JobRef:
    key: str
    job_id: str
    created_at: float


def link_values(ids: Iterable[str]) -> set[str]:
    """The ids a job can be found by from header values: each value, and a traceparent's trace id."""
    out: set[str] = set()
    for value in ids:
        text = str(value).strip()
        if not text:
            continue
        out.add(text)
        trace = trace_id_of(text)
        if trace:
            out.add(trace)
    return out


class WorkerJoin:
    """Jobs by id and by linked operation ids; answers which job an event belongs to."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRef] = {}
        self._by_job_id: dict[str, list[str]] = {}
        self._by_link: dict[str, set[str]] = {}
        self._links_of: dict[str, set[str]] = {}  # job key -> its link ids

    def add_job(self, key: str, job_id: str, created_at: float) -> None:
        if key in self.jobs:
            return
        self.jobs[key] = JobRef(key, job_id, created_at)
        self._by_job_id.setdefault(job_id, []).append(key)

    def add_ids(self, key: str, ids: Iterable[str]) -> None:
        for value in link_values(ids):
            self._by_link.setdefault(value, set()).add(key)
            self._links_of.setdefault(key, set()).add(value)

    def names_of(self, key: str) -> set[str]:
        """Everything an event may name to reach this job: its id and its link ids."""
        ref = self.jobs.get(key)
        return ({ref.job_id} if ref else set()) | self._links_of.get(key, set())

    def job_of(self, event: WorkerEvent) -> str | None:
        """The key of the job `event` speaks about, or None (unlinked)."""
        candidates: set[str] = set(self._by_job_id.get(event.job_id, ())) if event.job_id else set()
        if not candidates:
            for value in event.link_ids:
                candidates |= self._by_link.get(value, set())
        if not candidates:
            return None
        refs = sorted((self.jobs[k] for k in candidates), key=lambda r: (r.created_at, r.key))
        before = [r for r in refs if r.created_at <= event.ts]
        if before:
            return before[-1].key
        slack = [r for r in refs if r.created_at <= event.ts + CREATION_SLACK]
        return (slack[0] if slack else refs[0]).key
