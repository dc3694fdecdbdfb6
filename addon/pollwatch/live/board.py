"""The tracker's latest word on each job, handed from the event loop to the view's thread.

The tracker is only ever touched on mitmproxy's event loop; the view answers from a worker thread.
So after each flow the addon copies the job it touched (an immutable snapshot and the findings
the job holds) onto the board, and the thread reads only those copies. Reading the database
alone would show every change up to one writer flush (about half a second) late, and nothing at
all when `pollwatch_db` is empty.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from pollwatch.core.config import Config
from pollwatch.core.findings import Finding
from pollwatch.core.job import Job
from pollwatch.core.records import JobSnapshot

MAX_JOBS: int = Config.model_fields["max_jobs"].default
"""As many jobs as the tracker remembers; older ones are read from the database only."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One job as the tracker knew it after its latest flow."""

    job: JobSnapshot
    findings: tuple[Finding, ...]
    """The findings the job held then (once-per-job ones; the database has every finding)."""


class Board:
    """Latest `Seen` per job key, oldest job first; safe to read from any thread."""

    def __init__(self, limit: int = MAX_JOBS) -> None:
        self._limit = limit
        self._jobs: OrderedDict[str, Seen] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, job: Job, snapshot: JobSnapshot | None = None) -> None:
        """Copy `job` now (call on the event loop, right after the tracker changed it); `snapshot`,
        when given, is the one the tracker has just made of it."""
        if snapshot is None or snapshot.key != job.key:
            snapshot = job.snapshot()
        seen = Seen(snapshot, tuple(job.counts.values()))
        with self._lock:
            self._jobs[seen.job.key] = seen
            if len(self._jobs) > self._limit:
                self._jobs.popitem(last=False)

    def get(self, key: str) -> Seen | None:
        with self._lock:
            return self._jobs.get(key)

    def all(self) -> list[Seen]:
        """Every job on the board, oldest first (a copy: the loop may go on noting)."""
        with self._lock:
            return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)
