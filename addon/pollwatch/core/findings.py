"""Finding codes: what pollwatch can tell a developer, how bad it is, and what to do about it.

Codes are stable kebab-case identifiers: scripts, the database and the README refer to them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Severity(StrEnum):
    """How bad a finding is; declared from least to most severe."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for info up to 2 for error: compare severities by this, never by name."""
        return SEVERITIES.index(self)


SEVERITIES: tuple[Severity, ...] = tuple(Severity)
"""Least to most severe: info < warning < error."""


class FindingKind(BaseModel):
    code: str
    severity: Severity
    title: str
    meaning: str
    fix: str


def _kind(code: str, severity: Severity, title: str, meaning: str, fix: str) -> FindingKind:
    return FindingKind(code=code, severity=severity, title=title, meaning=meaning, fix=fix)


W, E, I = Severity.WARNING, Severity.ERROR, Severity.INFO

CATALOGUE: dict[str, FindingKind] = {
    k.code: k
    for k in (
        # Cache (RFC 9111)
        _kind("status-cacheable", W, "Status response may be reused from a cache",
              "A status response carries explicit freshness (max-age/s-maxage > 0, Expires after Date) "
              "or heuristic freshness (e.g. a 200 with Last-Modified and no Cache-Control), so a browser "
              "or shared cache may answer later polls without asking the server.",
              "Send `Cache-Control: no-store` (or `no-cache`) on status responses."),
        _kind("status-from-shared-cache", W, "Status served by an intermediary cache",
              "The response shows a cache hit (Cache-Status hit, X-Cache/CF-Cache-Status HIT, "
              "X-Cache-Hits > 0) or Age > 0: it did not come from the origin just now.",
              "Exclude status URLs from CDN/reverse-proxy caching, or send `Cache-Control: no-store`."),
        _kind("status-from-browser-cache", W, "Poll answered by the browser's own cache",
              "A HAR export marks this status response as served from the browser's cache (_fromCache): "
              "the request never reached the server, so the UI showed a stored state. A live proxy cannot "
              "see these; status-cacheable is the live sign.",
              "Send `Cache-Control: no-store` on status responses, or fetch them with `cache: 'no-store'`."),
        _kind("status-not-modified", W, "Poll answered 304 Not Modified",
              "The client keeps showing the state of its stored copy, and nothing shows the copy is still "
              "right: the server's ETag has not been seen to change with the state. (Once it has, or an "
              "origin check confirmed the copy, 304s are healthy and not reported, and the job's earlier "
              "status-not-modified is downgraded to info; an origin check that contradicts a 304 brings "
              "the warning back.)",
              "Make the ETag change with the state, or send `Cache-Control: no-store` on status responses."),
        _kind("status-stale-date", W, "Status response has an old Date",
              "The Date header is older than the moment the response arrived by more than the threshold: "
              "it was probably stored somewhere.",
              "Find the cache that stored it (check Age/Via/X-Cache) and bypass it for status URLs."),
        _kind("etag-reused-across-states", E, "One ETag for two different states",
              "Revalidating clients are told nothing changed while the state did.",
              "Derive the ETag from the job's state/version, not from the job id."),
        _kind("stale-status", E, "A cache delivered an out-of-date state",
              "A response served by a cache carries a state behind one already observed for the job.",
              "Stop caching status responses (`Cache-Control: no-store`) or purge the cache on state change."),
        # Order
        _kind("state-regression", E, "Job state went backwards",
              "The states delivered for the job moved back (e.g. succeeded then running).",
              "Read status from the primary/consistent store, or make clients ignore older states "
              "(compare a version or timestamp field)."),
        _kind("terminal-state-changed", E, "Terminal state changed",
              "A job reported one terminal state and later another.",
              "Terminal states must be final: fix the status writer, or stop retrying finished jobs."),
        _kind("response-reordered", W, "Overlapping polls answered out of order",
              "Two polls overlapped and the one sent first was answered last with an older state; a client "
              "that applies responses in arrival order shows the older state.",
              "Do not overlap polls (wait for each response), or drop responses older than the newest applied."),
        # Lifecycle
        _kind("poll-after-terminal", W, "Client kept polling after a terminal state",
              "The client polled again after a terminal state had reached it.",
              "Stop polling when the state is succeeded, failed, cancelled or expired."),
        _kind("polling-abandoned", W, "Client stopped polling before the job ended",
              "No terminal state was seen and the polls stopped.",
              "Keep polling until a terminal state (with back-off), or surface the give-up to the user."),
        _kind("stuck-non-terminal", W, "Job stuck in a non-terminal state",
              "The same non-terminal state was reported for longer than the threshold.",
              "Check the worker for this job id; if it finished, the status store or a cache is stale."),
        _kind("poll-too-fast", I, "Polls sooner than Retry-After",
              "The client polled sooner than the server's Retry-After asked.",
              "Honour Retry-After between polls."),
        # Correlation
        _kind("accepted-without-job-reference", W, "202 without a job reference",
              "A 202 Accepted response carries no status URL header and no job id in its body, so the "
              "client has nothing to poll.",
              "Return a Location/Operation-Location header or a job id and status link in the body."),
        _kind("unknown-job", W, "Poll for a job never created in this capture",
              "A request matches a known status-URL pattern but names an id no 202 returned.",
              "If the id looks mangled, fix how the client stores the job id; otherwise start capturing "
              "before the job is created."),
        _kind("wrong-environment", E, "Poll sent to another host",
              "The client polls a job on a different scheme/host/port than the one that created it "
              "(e.g. staging for a prod job).",
              "Poll the status URL exactly as returned, or build it from the same base URL as the create call."),
        _kind("status-url-off-host", W, "Status reference names another host",
              "The creating response's status reference does not resolve to the host the client called "
              "(a protocol-relative `//path` is read as a host name), and the client polls the same path on "
              "its own host; pollwatch follows those polls.",
              "Return an absolute status URL, or a path that starts with a single `/`."),
        _kind("creation-not-seen", I, "Job found from its polls",
              "A URL was polled until its state turned terminal, but no request that created the job is in "
              "the capture (it started earlier, or the client found the job through a search).",
              "Nothing to fix in the API; start capturing before the job is created to see its creation."),
        _kind("non-canonical-status-url", W, "Poll does not use the returned status URL",
              "The client polls the job through a URL that differs from the canonical status URL.",
              "Use the Location/Operation-Location URL as returned (including its query parameters)."),
        # Errors
        _kind("job-missing", W, "Status URL answered 404",
              "The server does not know the job (lost, wrong id, or another environment).",
              "Check the id and host; keep jobs long enough for clients to read the result."),
        _kind("job-expired", W, "Job expired",
              "The status answered 410 Gone or the state expired: the result is no longer available.",
              "Poll sooner or keep results longer; show 'expired' to the user, not 'failed' or 'running'."),
        _kind("status-error", W, "Status poll failed",
              "The status URL answered 5xx or 429: reading the status failed, which says nothing about the job.",
              "Retry with back-off (honour Retry-After); never treat an error as a job state."),
        _kind("unknown-state-word", W, "Unrecognised state word",
              "The status carries a state word pollwatch does not know; it is recorded as unknown.",
              "Add it with `--set pollwatch_states=WORD=STATE` if it is a real state."),
        # Worker (worker logs joined to the polls: pollwatch worker-log, pollwatch_worker_log)
        _kind("client-behind-worker", E, "Client received a state the worker had already left",
              "The client received a non-terminal state after the worker had logged a terminal one for the job "
              "(longer ago than the grace): a cache or the status endpoint is behind the worker. The evidence "
              "holds the lag and both timestamps.",
              "See who served it (served_by): stop caching status responses, or read the status from where the "
              "worker writes it."),
        _kind("worker-ahead-of-status", W, "Status endpoint trails the worker",
              "The worker logged a terminal state, but the status endpoint itself (the origin, not a cache) still "
              "answered non-terminal after the grace: a lagging replica, or a status store not updated.",
              "Read job status from the primary/consistent store, and update it in the same step the worker "
              "finishes."),
        _kind("worker-log-unlinked", I, "Worker log events joined no job",
              "Worker log events named neither a job id nor an operation/request id the proxy saw, so they could "
              "not be put beside the client's polls.",
              "Log the job id and the operation id together."),
    )
}


class Finding(BaseModel):
    """One finding. `key` identifies it for de-duplication: a finding raised again under the same
    key (once-per-job findings with a count) replaces the stored one and is not logged again."""

    key: str
    code: str
    severity: Severity
    job_key: str | None
    job_id: str | None
    flow_id: str | None
    ts: float
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    count: int = 1

    @property
    def is_repeat(self) -> bool:
        return self.count > 1

    @property
    def kind(self) -> FindingKind:
        return CATALOGUE[self.code]

    def line(self) -> str:
        """The one-line live warning: code, job, what happened, what to do."""
        job = f" job {self.job_id}" if self.job_id else ""
        return f"{self.code}{job}: {self.message} Fix: {self.kind.fix}"
