"""Active verification (opt-in): when a cache answered a poll, or may answer the next ones,
pollwatch asks the origin itself and compares what the client got with what the origin says now.

Pure like the rest of the core: which polls are worth a check (`plan_check`), how often a job may
be checked (`Schedule`), and what the origin's answer means (`judge`). Sending the request is the
mitm layer's job (`pollwatch.mitm.verify`); `Tracker.verified` reads the origin's state and calls
`judge`, so the findings are named and counted like the rules' own.

A check never proves more than it saw. The same ETag with another state is an error whenever it
is seen. A state the origin is ahead with is an error at once only when the client's copy was
provably held by a cache (a shared-cache hit, or a Date older than the origin's own by more than
its clock explains): the origin may have moved on in the moment between the client's answer and
the check. Otherwise the origin's state counts as observed, so the next poll a cache answers with
an older state is `stale-status` (the `order` rule), and a job whose polling stops gets the
origin's answer as evidence on `polling-abandoned`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

from pollwatch.core.cache import ServedBy, parse_http_date, parse_seconds
from pollwatch.core.findings import Finding
from pollwatch.core.job import Job
from pollwatch.core.naming import FindingNamer
from pollwatch.core.observation import Headers, Observation
from pollwatch.core.reading import Reading
from pollwatch.core.records import Update
from pollwatch.core.redact import redact_url
from pollwatch.core.rules import Raise, with_origin_check
from pollwatch.core.states import State
from pollwatch.core.urls import origin_of

CHECK_HEADER = "X-Pollwatch-Check"
"""Marks every request pollwatch sends itself; the addon ignores flows that carry it."""
REMEMBERED_JOBS = 10_000
"""Jobs whose check bookkeeping is kept (the least recently checked are forgotten first)."""
DATE_MARGIN = 2.0
"""Seconds a client's Date must lag more than the origin's own before a cache is blamed (Date
has one-second resolution, on both sides)."""


class Reason(StrEnum):
    """Why a poll was checked."""

    REVALIDATED = "304"            # the client keeps its stored copy
    SHARED_CACHE = "shared-cache"  # Age > 0, X-Cache: HIT, Cache-Status hit
    STALE_DATE = "stale-date"      # a Date well before the arrival
    CACHEABLE = "cacheable"        # fresh or heuristically fresh: caches may answer the next polls
    ABANDONED = "abandoned"        # polling stopped before a terminal state


class Result(StrEnum):
    CHECKED = "checked"                          # the origin says what the client got
    STALE = "stale-status"                       # the origin is ahead of a cached copy
    ETAG_REUSED = "etag-reused-across-states"    # same ETag, other state
    AHEAD = "origin ahead"                       # ahead, but the copy may just have aged since
    BEHIND = "origin behind"                     # e.g. a lagging replica answered the check
    NO_STATE = "no state"                        # the origin's answer carries no state
    FAILED = "check failed"                      # unreachable, timeout, TLS error


class CheckPlan(BaseModel):
    """One check to make: the client's side of the comparison (the URL is kept in memory only)."""

    job_key: str
    flow_id: str | None
    url: str
    reason: Reason
    client_status: int | None
    client_state: str | None
    client_etag: str | None
    client_at: float
    """When the client got its answer."""
    client_produced_at: float | None
    """When the origin produced the client's copy: its Date, else its arrival minus Age."""
    held: bool
    """The copy was provably held by a cache (a shared-cache hit; a stale Date is judged against
    the origin's own Date when it answers)."""


class OriginAnswer(BaseModel):
    """What the origin answered pollwatch's own request, or why there was no answer."""

    sent_at: float
    received_at: float | None = None
    status: int | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: bytes = b""
    error: str | None = None

    def observation(self, plan: CheckPlan) -> Observation:
        return Observation.make(flow_id=f"check:{plan.flow_id or plan.job_key}", method="GET", url=plan.url,
                                status=self.status, response_headers=self.headers, body=self.body,
                                request_ts=self.sent_at, response_ts=self.received_at or self.sent_at)


class CheckRecord(BaseModel):
    """One check as stored: what pollwatch sent (URL without secrets), what came back, the verdict."""

    job_key: str
    flow_id: str | None
    reason: str
    method: str = "GET"
    url: str
    sent_at: float
    received_at: float | None
    status: int | None
    client_state: str | None
    client_etag: str | None
    origin_state: str | None
    origin_etag: str | None
    result: str
    detail: str | None = None


# --- which polls are checked -------------------------------------------------------------------

def plan_check(update: Update, stale_date_after: float) -> CheckPlan | None:
    """A check for this poll, or None: only GET polls on the job's own host whose answer a cache
    gave (304, shared-cache signals, a stale Date) or may give next time (explicitly or
    heuristically fresh), and that show a non-terminal state (nothing is ahead of a terminal one)."""
    poll, job = update.poll, update.job
    if poll is None or job is None or poll.kind != "poll" or poll.method != "GET" or poll.status is None:
        return None
    if not (200 <= poll.status < 300 or poll.status == 304) or origin_of(poll.url) != job.host:
        return None
    state = _state(poll.state)
    if state is None or state is State.UNKNOWN or state.terminal:
        return None
    headers = poll.response_cache_headers
    date = parse_http_date(headers.get("date"))
    stale_date = date is not None and poll.response_ts - date > stale_date_after
    if poll.status == 304:
        reason = Reason.REVALIDATED
    elif poll.served_by == ServedBy.SHARED_CACHE:
        reason = Reason.SHARED_CACHE
    elif stale_date:
        reason = Reason.STALE_DATE
    elif poll.cache_verdict in ("fresh", "heuristic"):
        reason = Reason.CACHEABLE
    else:
        return None
    etag = headers.get("etag")
    if poll.status == 304 and not etag:
        etag = (poll.request_cache_headers.get("if-none-match") or "").split(",")[0].strip() or None
    produced = date if date is not None else poll.response_ts - (parse_seconds(headers.get("age")) or 0.0)
    return CheckPlan(job_key=job.key, flow_id=poll.flow_id, url=poll.url, reason=reason, client_status=poll.status,
                     client_state=state.value, client_etag=etag, client_at=poll.response_ts,
                     client_produced_at=produced, held=reason is Reason.SHARED_CACHE)


@dataclass
class _JobChecks:
    last_plan: CheckPlan
    sent: int = 0
    last_sent: float | None = None
    in_flight: bool = False
    abandonment_checked: bool = False


class Schedule:
    """Which planned checks go out: per job one at a time, at most one every `interval` seconds,
    never more than the client's own polls; plus one when the job's polling is abandoned."""

    def __init__(self, interval: float = 2.0, *, remember: int = REMEMBERED_JOBS) -> None:
        self.interval = interval
        self._remember = remember
        self._jobs: OrderedDict[str, _JobChecks] = OrderedDict()

    def admit(self, plan: CheckPlan, polls: int, now: float) -> bool:
        """Whether to send `plan` now; `polls` is how many polls the client has made so far."""
        entry = self._jobs.pop(plan.job_key, None) or _JobChecks(plan)
        entry.last_plan = plan
        self._jobs[plan.job_key] = entry
        if len(self._jobs) > self._remember:
            self._jobs.popitem(last=False)
        if entry.in_flight or entry.sent >= polls:
            return False
        if entry.last_sent is not None and now - entry.last_sent < self.interval:
            return False
        entry.sent, entry.last_sent, entry.in_flight = entry.sent + 1, now, True
        return True

    def abandoned(self, job_key: str, last_state: str | None, now: float) -> CheckPlan | None:
        """The one check of a job whose polls stopped, if an earlier poll of it was worth a check."""
        entry = self._jobs.get(job_key)
        if entry is None or entry.in_flight or entry.abandonment_checked:
            return None
        entry.abandonment_checked, entry.in_flight, entry.last_sent = True, True, now
        state = _state(last_state)
        return entry.last_plan.model_copy(update={
            "flow_id": None, "reason": Reason.ABANDONED, "client_status": None,
            "client_state": state.value if state else None,
            "client_etag": None, "held": False})

    def done(self, job_key: str) -> None:
        entry = self._jobs.get(job_key)
        if entry is not None:
            entry.in_flight = False


# --- what the origin's answer means ------------------------------------------------------------

def judge(job: Job | None, plan: CheckPlan, answer: OriginAnswer, reading: Reading,
          namer: FindingNamer) -> tuple[CheckRecord, list[Finding]]:
    """Compare the origin's answer with the client's copy: the stored record and any findings."""
    headers = Headers.of(answer.headers)
    origin = reading.state if reading.state is not State.UNKNOWN else None
    client = _state(plan.client_state)
    if answer.error is not None or answer.status is None:
        result, detail = Result.FAILED, answer.error or "no answer"
    elif origin is None:
        result, detail = Result.NO_STATE, f"the origin answered {answer.status} without a state pollwatch reads"
    elif client is None:
        result, detail = Result.NO_STATE, "the client had no state to compare"
    else:
        result, detail = _verdict(plan, client, origin, headers, answer), None
    record = CheckRecord(job_key=plan.job_key, flow_id=plan.flow_id, reason=plan.reason.value, url=redact_url(plan.url),
                         sent_at=answer.sent_at, received_at=answer.received_at, status=answer.status,
                         client_state=plan.client_state, client_etag=plan.client_etag,
                         origin_state=origin.value if origin else None, origin_etag=headers.get("etag"),
                         result=result.value, detail=detail)
    if job is None or origin is None or client is None:
        return record, []
    return record, _consequences(job, plan, record, client, origin, namer)


def _verdict(plan: CheckPlan, client: State, origin: State, headers: Headers, answer: OriginAnswer) -> Result:
    if origin is client:
        return Result.CHECKED
    if _same_etag(plan.client_etag, headers.get("etag")):
        return Result.ETAG_REUSED
    if (origin.rank or 0) <= (client.rank or 0):
        return Result.BEHIND
    return Result.STALE if plan.held or _held_by_date(plan, headers, answer) else Result.AHEAD


def _held_by_date(plan: CheckPlan, headers: Headers, answer: OriginAnswer) -> bool:
    """A stale Date proves a cache held the copy only if the origin's own Date is fresh now:
    otherwise it is the origin's clock."""
    if plan.reason is not Reason.STALE_DATE or plan.client_produced_at is None:
        return False
    origin_date = parse_http_date(headers.get("date"))
    if origin_date is None:
        return False
    client_lag = plan.client_at - plan.client_produced_at
    origin_lag = (answer.received_at or answer.sent_at) - origin_date
    return client_lag - origin_lag > DATE_MARGIN


def _state(value: str | None) -> State | None:
    try:
        return State(value) if value else None
    except ValueError:
        return None


def _same_etag(a: str | None, b: str | None) -> bool:
    """Weak comparison (RFC 9110 8.8.3.2): W/"x" and "x" name the same representation state."""
    return bool(a and b) and a.strip().removeprefix("W/") == b.strip().removeprefix("W/")  # type: ignore[union-attr]


def _consequences(job: Job, plan: CheckPlan, record: CheckRecord, client: State, origin: State,
                  namer: FindingNamer) -> list[Finding]:
    """Findings the check raises, and what it teaches the job."""
    result = Result(record.result)
    if result is Result.CHECKED and plan.client_status == 304:
        job.revalidation_confirmed = True  # the 304 really meant "same state"
    if job.max_state is None or (origin.rank or 0) > (job.max_state.rank or 0):
        job.max_state = origin  # observed at the origin: a cache delivering less later is stale-status
    job.origin_check = {"at": record.received_at or record.sent_at, "url": record.url, "origin_state": origin.value,
                        "client_last_state": client.value, "status": record.status, "origin_etag": record.origin_etag,
                        "result": record.result}
    if plan.reason is Reason.ABANDONED:
        amended = _abandoned_with_origin(job, namer)
        return [amended] if amended is not None else []
    evidence = {"verified_by": "origin check", "reason": plan.reason.value, "url": record.url,
                "client_state": client.value, "origin_state": origin.value, "client_etag": plan.client_etag,
                "origin_etag": record.origin_etag, "checked_at": record.received_at}
    if result is Result.ETAG_REUSED:
        job.revalidation_confirmed, job.revalidation_contradicted = False, True
        raised = Raise("etag-reused-across-states",
                       f"ETag {record.origin_etag} stands for state {client.value} in the client's copy, and the "
                       f"origin now sends it with {origin.value} (pollwatch's origin check).",
                       evidence | {"etag": record.origin_etag, "states": [client.value, origin.value]},
                       scope=record.origin_etag or "")
    elif result is Result.STALE:
        gap = round((record.received_at or record.sent_at) - (plan.client_produced_at or plan.client_at), 3)
        raised = Raise("stale-status",
                       f"a cache delivered {client.value} while the origin already said {origin.value} "
                       f"(pollwatch's origin check; the client's copy is {gap:.1f} s older).",
                       evidence | {"delivered": client.value, "already_observed": origin.value,
                                   "age_gap_seconds": gap}, scope=f"{client.value}<{origin.value}")
    else:
        return []
    return [namer.name(job, raised, flow_id=plan.flow_id, ts=record.received_at or record.sent_at)]


def _abandoned_with_origin(job: Job, namer: FindingNamer) -> Finding | None:
    """polling-abandoned, amended with what the origin said after the client stopped asking."""
    key = namer.scope_key(job, Raise("polling-abandoned", ""))
    finding = job.counts.get(key)
    if finding is None or job.origin_check is None:
        return None
    message, evidence = with_origin_check(finding.message, finding.evidence, job.origin_check, job.last_state)
    return namer.amend(job, "polling-abandoned", message=message, evidence=evidence)
