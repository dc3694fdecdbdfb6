"""What the core reports for each observation: job snapshots, poll records, transitions.

These are the boundary between the pure core and its consumers (storage, live log, CLI). The core
makes one of each for every poll, so they are slotted dataclasses, built without validation
(issue 13: a pydantic model per poll cost about 15 µs to build and dump). Records read back from a
database are validated where they come in: `validated(PollRecord, row)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import cache
from operator import attrgetter
from typing import Any, Literal, TypeVar

from pydantic import TypeAdapter

from pollwatch.core.findings import Finding

MatchedBy = Literal["create", "canonical", "same-path", "job-id", "template", "first-poll", "late-binding",
                    "back-reference", "discovered", "result", "off-host"]


@dataclass(slots=True)
class JobSnapshot:
    key: str
    job_id: str
    status_url: str | None
    host: str
    created_at: float
    created_by: Literal["response", "poll"]
    create_method: str | None
    create_url: str | None
    create_status: int | None
    create_flow_id: str | None
    reference_source: str
    operation_ids: dict[str, str]
    states: list[str]
    last_state: str | None
    terminal_state: str | None
    terminal_at: float | None
    polls: int
    polls_after_terminal: int
    last_poll_at: float | None
    updated_at: float


@dataclass(slots=True)
class PollRecord:
    """One observed exchange that belongs to a job: its creation or a status poll."""

    job_key: str
    flow_id: str
    kind: Literal["create", "poll"]
    matched_by: MatchedBy
    method: str
    url: str
    status: int | None
    request_ts: float
    response_ts: float
    raw_state: str | None
    state: str | None
    state_source: str | None
    cache_verdict: str
    freshness_lifetime: float | None
    served_by: str
    response_cache_headers: dict[str, str]
    request_cache_headers: dict[str, str]
    retry_after: float | None
    ids: dict[str, str]
    body_sha256: str | None
    client: str | None
    body: str | None = None  # only when the user asked to keep bodies


@dataclass(slots=True)
class Transition:
    job_key: str
    flow_id: str
    from_state: str | None
    to_state: str
    ts: float


@dataclass(slots=True)
class Update:
    """The core's answer to one observation (None from the core means: not job traffic)."""

    job: JobSnapshot | None = None
    poll: PollRecord | None = None
    transitions: list[Transition] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    earlier: list[Update] = field(default_factory=list)
    """Updates for exchanges that went by before their job was recognised (a creation found late,
    the first polls of a job discovered from its polls), oldest first."""

    def all(self) -> list[Update]:
        """The earlier updates, then this one: what a consumer stores and announces, in order."""
        return [*self.earlier, self]

    @property
    def new_findings(self) -> list[Finding]:
        """Findings to announce now; repeats only update the stored count."""
        return [f for f in self.findings if not f.is_repeat]


Record = JobSnapshot | PollRecord | Transition
R = TypeVar("R", JobSnapshot, PollRecord, Transition)


@cache
def _names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(kind))


@cache
def _getter(kind: type) -> attrgetter[Any]:
    return attrgetter(*_names(kind))


def items(record: Record) -> Iterator[tuple[str, Any]]:
    """The record's (field, value) pairs, in field order (nested dicts and lists shared, not copied)."""
    kind = record.__class__
    return zip(_names(kind), _getter(kind)(record))


def as_dict(record: Record) -> dict[str, Any]:
    return dict(items(record))


@cache
def _adapter(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def validated(kind: type[R], data: dict[str, Any]) -> R:
    """A record read back from outside the core (a database row), checked field by field."""
    return _adapter(kind).validate_python({name: data[name] for name in _names(kind) if name in data})
