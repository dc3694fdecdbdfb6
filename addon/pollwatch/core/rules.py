"""One function per finding rule. Each looks at a job (as it was before this poll) and the facts of
one poll, and says what to raise. The tracker owns state; rules only judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pollwatch.core.cache import RESPONSE_CACHE_HEADERS, CacheAnalysis, ServedBy, pick
from pollwatch.core.config import Config
from pollwatch.core.job import Job
from pollwatch.core.observation import Observation
from pollwatch.core.reading import Reading
from pollwatch.core.states import State
from pollwatch.core.urls import origin_of, path_key


@dataclass(frozen=True)
class PollFacts:
    obs: Observation
    analysis: CacheAnalysis
    reading: Reading
    matched_by: str
    config: Config


@dataclass
class Raise:
    """A finding to raise. `scope` de-duplicates: None raises on every occurrence, "" once per job,
    any other text once per job and scope (e.g. per ETag)."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    scope: str | None = ""


def _state(job: Job) -> str:
    return job.last_state.value if job.last_state else "none"


# --- correlation -------------------------------------------------------------------------------

INDIRECT_MATCHES = ("same-path", "job-id")
"""Polls tied to a job by its path or id rather than by its exact status URL."""

def accepted_without_job_reference(obs: Observation) -> Raise:
    """A creating response the client cannot follow: no status URL, no job id."""
    return Raise("accepted-without-job-reference",
                 f"{obs.method} {obs.url} answered {obs.status} with no status URL header and no job id in the body.",
                 {"method": obs.method, "url": obs.url, "status": obs.status, "headers": sorted(obs.response_headers)},
                 scope=None)


def unknown_job(unknown_id: str, obs: Observation, *, lookalike: str | None, mentioned: bool) -> Raise:
    """A poll that fits a status-URL template for an id no job has: say why it is unknown."""
    if lookalike is not None:
        likely = "mangled-id"
        why = f"it looks like a mangled copy of job {lookalike}: the client lost or corrupted its job id."
    elif mentioned:
        likely = "creation-not-recognised"
        why = ("an earlier exchange names it, but not as a job pollwatch recognised: teach pollwatch the "
               "creating response (--set pollwatch_id_fields / pollwatch_status_headers).")
    else:
        likely = "capture-started-late"
        why = "no earlier exchange names it: the capture probably started after the job was created."
    return Raise("unknown-job", f"poll for id {unknown_id!r}, which no 202 returned; {why}",
                 {"id": unknown_id, "url": obs.url, "lookalike": lookalike, "likely": likely}, scope=None)


def wrong_environment(job: Job, f: PollFacts) -> Raise | None:
    origin = origin_of(f.obs.url)
    if f.matched_by not in INDIRECT_MATCHES or origin == job.host:
        return None
    return Raise("wrong-environment",
                 f"polled on {origin} but the job was created on {job.host}.",
                 {"poll_url": f.obs.url, "status_url": job.status_url, "job_host": job.host, "poll_host": origin},
                 scope=origin)


def status_url_off_host(job: Job, f: PollFacts) -> Raise | None:
    if f.matched_by != "off-host":
        return None
    return Raise("status-url-off-host",
                 f"the status reference {job.status_reference!r} does not name {origin_of(f.obs.url)}; the client "
                 f"polls {f.obs.url}.",
                 {"reference": job.status_reference, "resolved": job.referenced_url, "poll_url": f.obs.url})


def non_canonical_status_url(job: Job, f: PollFacts) -> Raise | None:
    if f.matched_by not in INDIRECT_MATCHES or origin_of(f.obs.url) != job.host:
        return None
    return Raise("non-canonical-status-url",
                 f"polled {f.obs.url} instead of the returned status URL {job.status_url}.",
                 {"poll_url": f.obs.url, "status_url": job.status_url}, scope=path_key(f.obs.url))


# --- errors ------------------------------------------------------------------------------------

def job_missing(job: Job, f: PollFacts) -> Raise | None:
    """A 404 from the job's own host; on another host it is wrong-environment, and for an id
    never created it is unknown-job: those say more."""
    if f.obs.status != 404 or f.matched_by == "template" or origin_of(f.obs.url) != job.host:
        return None
    if f.reading.state is not None:
        return None  # a 404 that is the answer a delete waits for
    return Raise("job-missing", f"status URL answered 404 after {job.polls} poll(s); last state {_state(job)}.",
                 {"url": f.obs.url, "last_state": _state(job)})


def job_expired(job: Job, f: PollFacts) -> Raise | None:
    if f.obs.status != 410 and f.reading.state is not State.EXPIRED:
        return None
    how = "answered 410 Gone" if f.obs.status == 410 else f"reported state {f.reading.raw!r}"
    return Raise("job-expired", f"status {how}; last state before was {_state(job)}.",
                 {"url": f.obs.url, "status": f.obs.status, "last_state": _state(job)})


def status_error(job: Job, f: PollFacts) -> Raise | None:
    status = f.obs.status
    if status is None or not (status >= 500 or status == 429):
        return None
    return Raise("status-error", f"status poll answered {status}; this is not a job state.",
                 {"status": status, "retry_after": f.obs.response_headers.get("retry-after")})


def unknown_state_word(job: Job, f: PollFacts) -> Raise | None:
    if f.reading.state is not State.UNKNOWN:
        return None
    return Raise("unknown-state-word", f"state word {f.reading.raw!r} (field {f.reading.source}) is not known.",
                 {"word": f.reading.raw, "field": f.reading.source}, scope=f.reading.raw or "")


# --- cache -------------------------------------------------------------------------------------

def status_cacheable(job: Job, f: PollFacts) -> Raise | None:
    a = f.analysis
    if not a.verdict.reusable or f.obs.status is None or f.obs.status >= 400:
        return None
    lifetime = round(a.freshness_lifetime or 0.0, 3)
    how = "heuristically (Last-Modified, no explicit expiry)" if a.verdict == "heuristic" else "explicitly"
    return Raise("status-cacheable",
                 f"status response is {how} fresh for {lifetime:g} s, so caches may answer polls without the server.",
                 {"verdict": a.verdict.value, "freshness_lifetime": lifetime, "url": f.obs.url,
                  "headers": _cache_headers(f)})


def status_from_shared_cache(job: Job, f: PollFacts) -> Raise | None:
    if f.analysis.served_by is not ServedBy.SHARED_CACHE:
        return None
    return Raise("status-from-shared-cache",
                 f"state {f.reading.raw or f.obs.status} was served by a cache ({'; '.join(f.analysis.hit_signals)}).",
                 {"signals": f.analysis.hit_signals, "state": _value(f.reading.state), "headers": _cache_headers(f)})


def status_from_browser_cache(job: Job, f: PollFacts) -> Raise | None:
    if f.analysis.served_by is not ServedBy.BROWSER_CACHE:
        return None
    return Raise("status-from-browser-cache",
                 f"the browser answered this poll from its own cache with state {_value(f.reading.state) or 'unknown'}; "
                 "the server never saw it.", {"state": _value(f.reading.state), "headers": _cache_headers(f)})


def status_not_modified(job: Job, f: PollFacts) -> Raise | None:
    """A 304 keeps the client on its stored state. Healthy when the server's ETag is known to
    change with the state (or an origin check confirmed the copy): then it only says "same state"."""
    healthy = (job.etag_follows_state or job.revalidation_confirmed) and not job.revalidation_contradicted
    if f.obs.status != 304 or healthy:
        return None
    shown = _value(f.reading.state) or "unknown"
    return Raise("status-not-modified",
                 f"poll answered 304 Not Modified: the client keeps showing its stored state {shown}.",
                 {"stored_state": shown, "if_none_match": f.obs.request_headers.get("if-none-match"),
                  "etag": f.obs.response_headers.get("etag")})


HEALTHY_NOT_MODIFIED = ("polls answered 304 Not Modified, and the job's ETag has since changed with its state: "
                        "those 304s meant \"same state\" (healthy revalidation).")
"""What status-not-modified says once the job's ETag is seen to follow its state (downgraded to info)."""


def status_stale_date(job: Job, f: PollFacts) -> Raise | None:
    lag = f.analysis.date_lag
    if lag is None or lag <= f.config.stale_date_after:
        return None
    return Raise("status-stale-date",
                 f"Date header is {lag:.0f} s older than the response's arrival.",
                 {"date": f.obs.response_headers.get("date"), "lag_seconds": round(lag, 3),
                  "threshold": f.config.stale_date_after})


def etag_reused_across_states(job: Job, f: PollFacts) -> Raise | None:
    etag = f.obs.response_headers.get("etag")
    state = f.reading.state
    if not etag or state is None or state is State.UNKNOWN or f.obs.status == 304:
        return None
    earlier = job.etags.get(etag)
    if earlier is None or earlier is state:
        return None
    return Raise("etag-reused-across-states",
                 f"ETag {etag} was sent with state {earlier.value} and now with {state.value}.",
                 {"etag": etag, "states": [earlier.value, state.value]}, scope=etag)


# --- order -------------------------------------------------------------------------------------

def order(job: Job, f: PollFacts) -> Raise | None:
    """The delivered state moved backwards: say why, most specific first (one finding, not three)."""
    state = f.reading.state
    if state is None or state.rank is None or job.last_state is None:
        return None
    overtaken = job.overtaking_poll(f.obs, state)
    if overtaken is not None:
        return Raise("response-reordered",
                     f"poll sent at +{f.obs.request_ts - job.created_at:.2f} s was answered after a newer one; "
                     f"it delivers {state.value} after {overtaken.state.value}.",
                     {"older_request_ts": f.obs.request_ts, "newer_request_ts": overtaken.request_ts,
                      "delivered": state.value, "newer_state": overtaken.state.value}, scope=None)
    best = job.max_state
    if f.analysis.served_by is not ServedBy.ORIGIN and best is not None and state.rank < (best.rank or 0):
        return Raise("stale-status",
                     f"a cache delivered {state.value} although {best.value} was already observed.",
                     {"delivered": state.value, "already_observed": best.value,
                      "served_by": f.analysis.served_by.value, "signals": f.analysis.hit_signals},
                     scope=f"{state.value}<{best.value}")
    last = job.last_state
    if last.rank is not None and state.rank < last.rank:
        return Raise("state-regression", f"state went back from {last.value} to {state.value}.",
                     {"from": last.value, "to": state.value}, scope=f"{last.value}>{state.value}")
    return None


def terminal_state_changed(job: Job, f: PollFacts) -> Raise | None:
    state, terminal = f.reading.state, job.terminal_state
    if state is None or not state.terminal or terminal is None or state is terminal:
        return None
    if state is State.EXPIRED:
        return None  # a finished job's result expiring later is the normal end of its life
    return Raise("terminal-state-changed", f"terminal state changed from {terminal.value} to {state.value}.",
                 {"from": terminal.value, "to": state.value}, scope=f"{terminal.value}>{state.value}")


# --- lifecycle ---------------------------------------------------------------------------------

def poll_after_terminal(job: Job, f: PollFacts) -> Raise | None:
    """Only the client that received the terminal state is at fault for polling again."""
    seen_at = job.terminal_seen_by.get(f.obs.client)
    if seen_at is None or f.obs.request_ts < seen_at:
        return None
    count = job.polls_after_terminal + 1
    return Raise("poll-after-terminal",
                 f"client polled {count} time(s) after terminal state {job.terminal_state.value if job.terminal_state else ''}.",
                 {"count": count, "terminal_state": _value(job.terminal_state), "terminal_at": job.terminal_at})


def poll_too_fast(job: Job, f: PollFacts) -> Raise | None:
    advice = job.retry_after_for.get(f.obs.client)
    if advice is None:
        return None
    retry_after, since = advice
    waited = f.obs.request_ts - since
    if waited >= retry_after * 0.9 - 0.05:
        return None
    return Raise("poll-too-fast", f"polled {waited:.2f} s after a Retry-After of {retry_after:g} s.",
                 {"waited": round(waited, 3), "retry_after": retry_after})


def stuck_non_terminal(job: Job, now: float, config: Config) -> Raise | None:
    state = job.last_state
    if state is None or state.terminal or state is State.UNKNOWN or job.state_since is None:
        return None
    stuck_for = now - job.state_since
    if stuck_for <= config.stuck_after:
        return None
    return Raise("stuck-non-terminal", f"state {state.value} for {stuck_for:.0f} s (threshold {config.stuck_after:g} s).",
                 {"state": state.value, "since": job.state_since, "seconds": round(stuck_for, 3)},
                 scope=f"{state.value}@{job.state_since}")


def polling_abandoned(job: Job, now: float, config: Config, *, capture_ended: bool = False) -> Raise | None:
    """Polls stopped before a terminal state: idle for several poll intervals (or the threshold),
    or, at the end of a capture, no terminal state at all."""
    if job.finished or job.abandoned:
        return None
    idle = now - job.last_activity
    interval = job.expected_interval()
    limit = config.abandon_after
    if interval is not None:
        limit = min(limit, max(config.abandon_intervals * interval, config.abandon_floor))
    evidence = {"idle_seconds": round(idle, 3), "limit_seconds": round(limit, 3), "last_state": _state(job),
                "polls": job.polls, "capture_ended": capture_ended}
    if idle > limit:
        message = f"no poll for {idle:.1f} s and no terminal state (last state {_state(job)}, {job.polls} poll(s))."
    elif capture_ended:
        message = (f"capture ended before a terminal state (last state {_state(job)}, {job.polls} poll(s), "
                   f"last activity {idle:.1f} s before the end).")
    else:
        return None
    if job.origin_check is not None:
        message, evidence = with_origin_check(message, evidence, job.origin_check, job.last_state)
    return Raise("polling-abandoned", message, evidence)


ORIGIN_NOTE = " pollwatch's origin check: "


def with_origin_check(message: str, evidence: dict[str, Any], check: dict[str, Any],
                      client: State | None) -> tuple[str, dict[str, Any]]:
    """polling-abandoned with what the origin said when pollwatch last asked it (active
    verification): the client's last state may be long behind."""
    when = datetime.fromtimestamp(check["at"], UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    origin = State(check["origin_state"])
    client = client or State(check["client_last_state"])
    if (origin.rank or 0) > (client.rank or 0):
        note = f"the origin reached {origin.value} by {when} while the client's last seen state was {client.value}."
    else:
        note = f"the origin still said {origin.value} at {when}."
    return f"{message.split(ORIGIN_NOTE)[0]}{ORIGIN_NOTE}{note}", evidence | {"origin_check": check}


CREATION_RULES = (status_cacheable, status_from_shared_cache, status_from_browser_cache, status_stale_date)
"""For a GET answered 202 (a self-monitor), the creating response is already a status response."""

POLL_RULES = (
    wrong_environment, status_url_off_host, non_canonical_status_url, job_missing, job_expired, status_error,
    unknown_state_word, status_cacheable, status_from_shared_cache, status_from_browser_cache, status_not_modified,
    status_stale_date, etag_reused_across_states, order, terminal_state_changed,
    poll_after_terminal, poll_too_fast,
)


def _value(state: State | None) -> str | None:
    return state.value if state is not None else None


def _cache_headers(f: PollFacts) -> dict[str, str]:
    return pick(f.obs.response_headers, RESPONSE_CACHE_HEADERS)
