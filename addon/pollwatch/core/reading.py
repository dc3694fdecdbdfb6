"""Which state a response shows the client (RFC 9110 and common API conventions), and where it
was read: a body field, Google's `done` flag, a status code, or the client's stored copy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pollwatch.core.job import Job
from pollwatch.core.observation import Observation
from pollwatch.core.states import State, Vocabulary, read_done_flag, state_of
from pollwatch.core.urls import path_key, url_key


@dataclass(frozen=True)
class Reading:
    """The state a response delivers to the client, and where pollwatch read it."""

    raw: str | None
    state: State | None
    source: str | None


NOTHING = Reading(None, None, None)


def read_state(obs: Observation, job: Job | None, document: object, *, fields: Sequence[str],
               vocabulary: Vocabulary) -> Reading:
    """The state this response shows; `job` (None for a creating response) gives the context a
    body-less answer needs (its status URL, whether it is a monitor, its ETags)."""
    status = obs.status
    if status is None:
        return NOTHING
    if status == 304:
        return Reading("304 Not Modified", stored_state(obs, job), "stored-copy")
    on_status_url = job is not None and job.status_url is not None and url_key(obs.url) == url_key(job.status_url)
    if status in (404, 410) and on_status_url and job is not None and _deletes(job):
        return Reading(f"{status} gone", State.SUCCEEDED, "status-code")  # what a delete was waiting for
    if status == 410:
        return Reading("410 Gone", State.EXPIRED, "status-code")
    if status >= 400:
        return NOTHING  # an error body describes the request, not the job
    if isinstance(document, dict):
        found = state_of(document, fields, vocabulary)
        if found is not None:
            return Reading(found.raw, found.state, found.source)
        done = read_done_flag(document)
        if done is not None:
            return Reading(done[0], done[1], "done")
    if on_status_url and job is not None:
        if status == 202:
            return Reading("202 Accepted", State.RUNNING, "status-code")
        if status == 303:
            return Reading("303 See Other", State.SUCCEEDED, "status-code")
        if status in (200, 201, 204) and job.monitor:
            return Reading(f"{status} on monitor", State.SUCCEEDED, "status-code")
    return NOTHING


def _deletes(job: Job) -> bool:
    """A DELETE whose job is followed on the resource it removes (not on a separate monitor)."""
    return (job.create_method == "DELETE" and job.create_url is not None and job.status_url is not None
            and path_key(job.create_url) == path_key(job.status_url))


def looks_like_status(status: int | None, reading: Reading) -> bool:
    """A response tied to a job by something other than its exact status URL counts as a poll
    only if it reads like a status (not a result download, say)."""
    return reading.state is not None or status in (202, 304, 404, 410)


def stored_state(obs: Observation, job: Job | None) -> State | None:
    """For a 304: the state of the copy the client revalidated (by ETag), else the last one seen."""
    if job is None:
        return None
    for tag in (obs.request_headers.get("if-none-match") or "").split(","):
        state = job.etags.get(tag.strip())
        if state is not None:
            return state
    return job.last_state
