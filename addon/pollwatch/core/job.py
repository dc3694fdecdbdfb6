"""What pollwatch remembers about one job while traffic flows, and how a delivered state changes it.

Up to `max_jobs` (20,000) jobs are remembered at once, so a job is kept small: slots instead of an
attribute dict, and every per-job collection bounded (the latest polls, intervals, clients, ETags,
state changes), however long the job is polled.
"""

from __future__ import annotations

import statistics
from array import array
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pollwatch.core.findings import Finding
from pollwatch.core.observation import Observation
from pollwatch.core.records import JobSnapshot
from pollwatch.core.states import State

RECENT_POLLS = 16  # polls kept for the reordering rule
INTERVALS = 8  # poll intervals kept for the client's rhythm (median)
MAX_ETAGS = 64  # ETags remembered per job
MAX_CLIENTS = 64  # clients remembered per job (terminal state seen, Retry-After advice)
MAX_STATES = 256
"""State changes kept per job: the first ones and, in the last place, the latest (a job that flips
between two states all day must not grow)."""


class RecentPoll(NamedTuple):
    request_ts: float
    response_ts: float
    state: State


_STATES = tuple(State)
_STATE_INDEX = {state: float(i) for i, state in enumerate(_STATES)}


@dataclass(slots=True)
class Job:
    """One job: its identity, the states delivered to clients, its polls and its findings so far."""

    key: str
    job_id: str
    aliases: list[str]
    status_url: str | None
    host: str
    created_at: float
    created_by: str
    reference_source: str
    create_method: str | None = None
    create_url: str | None = None
    create_status: int | None = None
    create_flow_id: str | None = None
    monitor: bool = False  # a Location-style monitor: 200/201/204 without a state field means done
    result_ids: list[str] = field(default_factory=list)  # ids of the result a task links to
    off_host_key: str | None = None  # the status URL moved onto the host the client called
    revalidation_confirmed: bool = False  # an origin check found the client's 304 copy still right
    revalidation_contradicted: bool = False  # an origin check found a 304 copy wrong (same ETag, other state)
    origin_check: dict[str, Any] | None = None  # the latest origin check's answer (active verification)
    index_keys: list[tuple[str, str]] = field(default_factory=list)  # (url key, path key) it is indexed under
    status_reference: str | None = None  # the status reference as the creating response wrote it
    referenced_url: str | None = None  # what that reference resolves to
    operation_ids: dict[str, str] = field(default_factory=dict)
    states: list[State] = field(default_factory=list)
    last_state: State | None = None
    max_state: State | None = None
    state_since: float | None = None
    terminal_state: State | None = None
    terminal_at: float | None = None
    terminal_seen_by: dict[str | None, float] = field(default_factory=dict)  # client -> when it first got a terminal state
    ended: str | None = None  # "missing" when the server lost the job
    abandoned: bool = False
    polls: int = 0
    polls_after_terminal: int = 0
    last_poll_at: float | None = None
    last_activity: float = 0.0
    retry_after: float | None = None  # the latest Retry-After any client got: the server's rhythm
    retry_after_for: dict[str | None, tuple[float, float]] = field(default_factory=dict)  # client -> (s, when)
    etags: dict[str, State] = field(default_factory=dict)  # only through remember_etag
    etag_follows_state: bool = False
    """The server sent different ETags with different states: its 304s mean "same state"."""
    # The latest RECENT_POLLS polls as (request_ts, response_ts, state number) and the latest
    # INTERVALS intervals, in flat arrays of doubles: a tenth of the memory of tuples of floats.
    recent: array[float] = field(default_factory=lambda: array("d"))
    intervals: array[float] = field(default_factory=lambda: array("d"))
    counts: dict[str, Finding] = field(default_factory=dict)
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.terminal_state is not None or self.ended is not None

    def expected_interval(self) -> float | None:
        """How often this client polls: median recent interval, else the server's Retry-After."""
        if len(self.intervals) >= 2:
            return statistics.median(self.intervals)
        return self.retry_after

    def note_poll(self, request_ts: float, response_ts: float, state: State) -> None:
        self.recent.extend((request_ts, response_ts, _STATE_INDEX[state]))
        if len(self.recent) > 3 * RECENT_POLLS:
            del self.recent[:3]

    def note_interval(self, seconds: float) -> None:
        self.intervals.append(seconds)
        if len(self.intervals) > INTERVALS:
            del self.intervals[0]

    def note_terminal_seen(self, client: str | None, ts: float) -> None:
        """When `client` first got a terminal state (the earliest clients kept: their later polls
        are the ones after the end)."""
        if client not in self.terminal_seen_by and len(self.terminal_seen_by) < MAX_CLIENTS:
            self.terminal_seen_by[client] = ts

    def note_retry_after(self, client: str | None, advice: tuple[float, float] | None) -> None:
        """The Retry-After `client` was last given (None: its last answer had none)."""
        if advice is None:
            self.retry_after_for.pop(client, None)
            return
        self.retry_after_for[client] = advice
        if len(self.retry_after_for) > MAX_CLIENTS:
            del self.retry_after_for[next(iter(self.retry_after_for))]

    def overtaking_poll(self, obs: Observation, state: State) -> RecentPoll | None:
        """A poll sent after this one but answered before it, with a later state."""
        # Any client: a browser polling with setInterval spreads its polls over several
        # connections, and it is one client all the same.
        recent, rank = self.recent, state.rank or 0
        for i in range(0, len(recent), 3):
            if recent[i] > obs.request_ts and recent[i + 1] <= obs.response_ts:
                newer = _STATES[int(recent[i + 2])]
                if (newer.rank or 0) > rank:
                    return RecentPoll(recent[i], recent[i + 1], newer)
        return None

    def deliver(self, state: State, ts: float) -> bool:
        """Record a state reaching the client; True if it differs from the previous one."""
        changed = state is not self.last_state
        if changed:
            if len(self.states) < MAX_STATES:
                self.states.append(state)
            else:
                self.states[-1] = state
            self.state_since = ts
        self.last_state = state
        if state.rank is not None and (self.max_state is None or state.rank > (self.max_state.rank or 0)):
            self.max_state = state
        if state.terminal and (self.terminal_state is not state):
            self.terminal_state, self.terminal_at = state, ts
        return changed

    def remember_etag(self, etag: str, state: State) -> None:
        """The state first sent with `etag` (bounded: the oldest tags are forgotten)."""
        if etag in self.etags:
            return
        self.etags[etag] = state
        if len(self.etags) > MAX_ETAGS:
            del self.etags[next(iter(self.etags))]
        # Asked on every poll, so kept rather than computed: state members are singletons.
        self.etag_follows_state = len({id(s) for s in self.etags.values()}) >= 2

    def snapshot(self) -> JobSnapshot:
        """The job as consumers see it after this update (one per poll: `_value_`, not the slower
        enum property `value`)."""
        return JobSnapshot(
            key=self.key, job_id=self.job_id, status_url=self.status_url, host=self.host,
            created_at=self.created_at, created_by=self.created_by,  # type: ignore[arg-type]
            create_method=self.create_method, create_url=self.create_url, create_status=self.create_status,
            create_flow_id=self.create_flow_id, reference_source=self.reference_source,
            operation_ids=dict(self.operation_ids), states=[s._value_ for s in self.states],
            last_state=self.last_state._value_ if self.last_state else None,
            terminal_state=self.terminal_state._value_ if self.terminal_state else None,
            terminal_at=self.terminal_at, polls=self.polls, polls_after_terminal=self.polls_after_terminal,
            last_poll_at=self.last_poll_at, updated_at=self.updated_at,
        )
