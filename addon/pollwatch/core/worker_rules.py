"""The worker's view against the client's: one function per rule, and the judge that runs them.

A rule looks at one poll of a job and the worker's latest state line for that job before the
poll's request (when that line is terminal: a retried job is running again) and says what to raise. `WorkerJudge` is the one mechanism the
live proxy (poll by poll, events as the log is followed) and the offline recompute (`pollwatch
worker-log`, `pollwatch analyze`) share, so ingesting worker logs before or after the traffic
gives the same findings. Its findings are keyed `...:worker`, apart from the tracker's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pollwatch.core.findings import CATALOGUE, Finding
from pollwatch.core.records import JobSnapshot, PollRecord
from pollwatch.core.rules import Raise
from pollwatch.core.states import State
from pollwatch.core.worker import WorkerEvent, WorkerSettings
from pollwatch.core.worker_join import WorkerJoin

WORKER_SCOPE = "worker"
"""Scope of every worker finding: their keys end in `:worker`, so a recompute replaces exactly them."""
WORKER_CODES = ("client-behind-worker", "worker-ahead-of-status", "worker-log-unlinked")
"""Codes only worker logs raise (`stale-status` is shared with the tracker)."""
MAX_EVENTS = 200_000
"""Worker events kept in memory while following a log live (the oldest go first)."""


@dataclass(frozen=True)
class WorkerFacts:
    """One non-terminal answer to a poll the client sent after the worker logged a terminal state.
    The lag is counted from the worker's line to the poll's request: a consistent server asked
    after the job ended cannot answer otherwise, whatever the answer's transit time."""

    job: JobSnapshot
    poll: PollRecord
    done: WorkerEvent
    lag: float
    already_behind: bool
    """The poll's state is behind one the client already received (the tracker's stale-status)."""


def _when(f: WorkerFacts) -> dict[str, object]:
    return {"delivered": f.poll.state, "worker_state": f.done.state.value if f.done.state else None,
            "lag_seconds": round(f.lag, 3), "worker_ts": f.done.ts, "poll_request_ts": f.poll.request_ts,
            "poll_ts": f.poll.response_ts,
            "worker_source": f.done.source, "served_by": f.poll.served_by}


def client_behind_worker(f: WorkerFacts) -> Raise | None:
    """The symptom: whoever answered, the client got a non-terminal state the worker had left."""
    return Raise("client-behind-worker",
                 f"the client asked {f.lag:.2f} s after the worker logged "
                 f"{f.done.state_word or f.done.state} ({f.done.source}) and received {f.poll.state}.", _when(f),
                 scope=WORKER_SCOPE)


def stale_status_behind_worker(f: WorkerFacts) -> Raise | None:
    """A cache's copy behind the worker, before the client itself saw the newer state."""
    if f.poll.served_by == "origin" or f.already_behind:
        return None
    return Raise("stale-status",
                 f"a cache ({f.poll.served_by}) delivered {f.poll.state} although the worker had logged "
                 f"{f.done.state_word or f.done.state} {f.lag:.2f} s earlier.", _when(f), scope=WORKER_SCOPE)


def worker_ahead_of_status(f: WorkerFacts) -> Raise | None:
    """The origin itself trails the worker: a lagging replica or a status store not updated."""
    if f.poll.served_by != "origin" or f.poll.status == 304:
        return None
    return Raise("worker-ahead-of-status",
                 f"the status endpoint (origin) still answered {f.poll.state} {f.lag:.2f} s after the worker "
                 f"logged {f.done.state_word or f.done.state} ({f.done.source}).", _when(f), scope=WORKER_SCOPE)


WORKER_RULES: tuple[Callable[[WorkerFacts], Raise | None], ...] = (
    client_behind_worker, stale_status_behind_worker, worker_ahead_of_status,
)


def worker_log_unlinked(unlinked: int, total: int, example: WorkerEvent | None) -> Raise | None:
    """Worker events that name neither a job id nor an id the client saw cannot be joined."""
    if not unlinked:
        return None
    where = f" (first: {example.source})" if example is not None else ""
    return Raise("worker-log-unlinked",
                 f"{unlinked} of {total} worker event(s) name no job id and no operation id the proxy saw{where}.",
                 {"unlinked": unlinked, "events": total, "example": example.source if example else None},
                 scope=WORKER_SCOPE)


def _names(event: WorkerEvent) -> set[str]:
    return {n for n in (event.job_id, *event.link_ids) if n is not None}


class WorkerJudge:
    """Holds the worker events and the jobs they join; judges each poll against them."""

    def __init__(self, settings: WorkerSettings | None = None) -> None:
        self.settings = settings or WorkerSettings()
        self.join = WorkerJoin()
        self.events: deque[WorkerEvent] = deque()
        self._by_name: dict[str, deque[WorkerEvent]] = {}  # job id or link id -> events naming it
        self._counts: dict[str, Finding] = {}
        self._best: dict[str, int] = {}  # job key -> highest state rank the client received

    def add_events(self, events: Iterable[WorkerEvent]) -> None:
        for event in events:
            self.events.append(event)
            for name in _names(event):
                self._by_name.setdefault(name, deque()).append(event)
        while len(self.events) > MAX_EVENTS:  # the oldest go first: each is first under its names
            old = self.events.popleft()
            for name in _names(old):
                kept = self._by_name.get(name)
                if kept and kept[0] is old:
                    kept.popleft()
                if not kept:
                    self._by_name.pop(name, None)

    def note_job(self, job: JobSnapshot) -> None:
        self.join.add_job(job.key, job.job_id, job.created_at)
        self.join.add_ids(job.key, job.operation_ids.values())

    def events_of(self, job_key: str) -> list[WorkerEvent]:
        """The job's worker events, oldest first."""
        named = {id(e): e for name in self.join.names_of(job_key) for e in self._by_name.get(name, ())}
        return sorted((e for e in named.values() if self.join.job_of(e) == job_key), key=lambda e: e.ts)

    def latest_state(self, job_key: str, before: float) -> WorkerEvent | None:
        """The job's last state event before `before`: a worker that logged `failed` and then
        retried is running again, so only its latest word counts."""
        stated = [e for e in self.events_of(job_key) if e.state is not None and e.ts < before]
        return stated[-1] if stated else None

    def judge(self, job: JobSnapshot, poll: PollRecord) -> list[Finding]:
        """Worker findings for one exchange of `job` (call in arrival order)."""
        self.note_job(job)
        self.join.add_ids(job.key, poll.ids.values())
        state = State(poll.state) if poll.state else None
        best = self._best.get(job.key, -1)
        if state is not None and state.rank is not None:
            self._best[job.key] = max(best, state.rank)
        if poll.kind != "poll" or state is None or state.rank is None or state.terminal or not self.events:
            return []
        done = self.latest_state(job.key, poll.request_ts)
        if done is None or not done.terminal or poll.request_ts - done.ts <= self.settings.grace:
            return []
        facts = WorkerFacts(job, poll, done, poll.request_ts - done.ts, already_behind=state.rank < best)
        return [self._name(job.key, job.job_id, r, poll.flow_id, poll.response_ts)
                for rule in WORKER_RULES if (r := rule(facts)) is not None]

    def unlinked(self, owner: str, events: list[WorkerEvent], ts: float) -> Finding | None:
        """The per-run summary of `events` (one run's) that joined no job; `owner` names the run."""
        loose = [e for e in events if self.join.job_of(e) is None]
        raised = worker_log_unlinked(len(loose), len(events), loose[0] if loose else None)
        return self._name(owner, None, raised, None, ts, job=False) if raised else None

    def _name(self, owner: str, job_id: str | None, raised: Raise, flow_id: str | None, ts: float, *,
              job: bool = True) -> Finding:
        key = f"{owner}:{raised.code}:{raised.scope}"
        earlier = self._counts.get(key) if job else None
        count = earlier.count + 1 if earlier else 1
        finding = Finding(key=key, code=raised.code, severity=CATALOGUE[raised.code].severity,
                          job_key=owner if job else None, job_id=job_id,
                          flow_id=earlier.flow_id if earlier else flow_id, ts=earlier.ts if earlier else ts,
                          message=raised.message, evidence=raised.evidence | ({"count": count} if count > 1 else {}),
                          count=count)
        if job:
            self._counts[key] = finding
        return finding
