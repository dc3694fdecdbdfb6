"""What the core reports for each observation: job snapshots, poll records, transitions.

These are the boundary between the pure core and its consumers (storage, live log, CLI).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from pollwatch.core.findings import Finding


class JobSnapshot(BaseModel):
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


class PollRecord(BaseModel):
    """One observed exchange that belongs to a job: its creation or a status poll."""

    job_key: str
    flow_id: str
    kind: Literal["create", "poll"]
    matched_by: Literal["create", "canonical", "same-path", "job-id", "template", "first-poll", "late-binding",
                        "back-reference", "discovered", "result", "off-host"]
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


class Transition(BaseModel):
    job_key: str
    flow_id: str
    from_state: str | None
    to_state: str
    ts: float


class Update(BaseModel):
    """The core's answer to one observation (None from the core means: not job traffic)."""

    job: JobSnapshot | None = None
    poll: PollRecord | None = None
    transitions: list[Transition] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    earlier: list["Update"] = Field(default_factory=list)
    """Updates for exchanges that went by before their job was recognised (a creation found late,
    the first polls of a job discovered from its polls), oldest first."""

    def all(self) -> list["Update"]:
        """The earlier updates, then this one: what a consumer stores and announces, in order."""
        return [*self.earlier, self]

    @property
    def new_findings(self) -> list[Finding]:
        """Findings to announce now; repeats only update the stored count."""
        return [f for f in self.findings if not f.is_repeat]
