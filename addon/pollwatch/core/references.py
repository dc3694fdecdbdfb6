"""Recognising jobs and their status URLs.

A job is born from a 202, a 201/200 carrying an async-operation header, or a mutating request
answered 2xx whose body names a job in a non-terminal state. Its reference may sit in a header,
in a body field or in a link, in the document or in the object it wraps; this module finds it
and names the job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel

from pollwatch.core.documents import layers, link, looks_like_id, lookup, names_the_job, scalar_id
from pollwatch.core.observation import Headers, Observation
from pollwatch.core.urls import origin_of, path_segments, query_values, split, url_tokens

ASYNC_HEADERS = ("operation-location", "azure-asyncoperation")
REFERENCE_HEADERS = ("operation-location", "azure-asyncoperation", "location", "content-location")
ID_FIELDS = ("id", "jobId", "job_id", "operationId", "operation_id", "name")
LINK_FIELDS = ("href", "statusUrl", "status_url", "links.status", "_links.self.href", "links.self",
               "_links.status.href", "statusUri", "job_status.url", "urls.get", "urls.status", "self")
STATUS_LINKS = frozenset({"statusUrl", "status_url", "statusUri", "links.status", "_links.status.href",
                          "job_status.url", "urls.get", "urls.status"})
"""Body links that name a status monitor (not the created resource itself): a sign of a job."""
RESULT_FIELDS = ("href_result", "resourceLocation", "result_url", "resultUrl", "links.result", "urls.result")
"""Where the result of a task will be: clients often poll the result instead of the task."""
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GENERIC_SEGMENTS = frozenset({"status", "state", "result", "results", "operation", "progress", "poll", "pending"})
ID_HEADERS = (
    "x-request-id", "x-correlation-id", "request-id", "traceparent", "x-ms-request-id",
    "x-ms-client-request-id", "operation-id", "x-amzn-requestid", "apim-request-id",
)


class JobReference(BaseModel):
    """What a creating response says about the job it started."""

    job_id: str | None
    status_url: str | None
    source: str  # where the reference came from: a header name, a body field, or "none"
    aliases: list[str]  # every id the response gave for the job (job id first)
    result_ids: list[str] = []  # ids of the result a task links to (`href_result`): polled in its stead
    raw: str | None = None  # the reference as written, for findings that quote it
    off_host_url: str | None = None  # the same path on the host the client called, when the
    # reference resolves elsewhere (`Location: //vaults/1` names a host "vaults")


ID_PARAMS = frozenset({"id", "job", "jobid", "job_id", "operation", "operationid", "operation_id", "requestid",
                       "request_id", "task", "taskid", "task_id"})


def id_from_url(url: str) -> str | None:
    """The URL's last non-empty path segment, skipping generic words like `status`; for a
    generic path (`/status?job=a1`) the value of an id-named query parameter."""
    segments = path_segments(url)
    if not segments or segments[-1].lower() in GENERIC_SEGMENTS:
        for name, value in query_values(url):
            if name.lower() in ID_PARAMS:
                return value
    for segment in reversed(segments):
        if segment.lower() not in GENERIC_SEGMENTS:
            return segment
    return segments[-1] if segments else None


CREATED = frozenset({200, 201, 202})
"""The only statuses a job-creating response has (see is_job_creation)."""


def is_job_creation(obs: Observation, extra_headers: Sequence[str] = ()) -> bool:
    """202 to any method, or 200/201 with an async-operation header. The status decides first:
    the headers are decoded only for a 200 or 201 (most flows are neither job traffic nor 2xx)."""
    if obs.status == 202:
        return True
    if obs.status in (200, 201):
        headers = obs.response_headers
        return any(h in headers for h in (*ASYNC_HEADERS, *extra_headers))
    return False


def find_reference(
    request_url: str,
    headers: Headers,
    document: Mapping[str, Any] | None,
    *,
    extra_headers: Sequence[str] = (),
    extra_id_fields: Sequence[str] = (),
) -> JobReference:
    """The job a creating response refers to: status URL first, then ids from the body."""
    status_url, source, raw = None, "none", None
    for name in (*extra_headers, *REFERENCE_HEADERS):
        raw = headers.get(name.lower())
        status_url = _resolve(request_url, raw)
        if status_url:
            source = name.lower()
            break
    if status_url is None and document is not None:
        status_url, source, raw = _body_link(request_url, document)

    body_ids = _body_ids(document, (*extra_id_fields, *ID_FIELDS)) if document is not None else []
    job_id: str | None = None
    if status_url is not None:
        tokens = set(url_tokens(status_url))
        confirmed = [i for i in body_ids if i in tokens] + _confirming_values(document, tokens)
        job_id = confirmed[0] if confirmed else id_from_url(status_url)
    elif body_ids:
        job_id = body_ids[0]
        source = "body"
    aliases = list(dict.fromkeys([i for i in [job_id, *body_ids] if i]))
    return JobReference(job_id=job_id, status_url=status_url, source=source, aliases=aliases,
                        result_ids=_result_ids(document), raw=raw,
                        off_host_url=_off_host(request_url, status_url, raw))


def _body_link(request_url: str, document: Mapping[str, Any]) -> tuple[str | None, str, str | None]:
    for layer in layers(document):
        for path in LINK_FIELDS:
            raw = link(layer, path)
            status_url = _resolve(request_url, raw)
            if status_url:
                return status_url, f"body.{path}", raw
    return None, "none", None


def _result_ids(document: Mapping[str, Any] | None) -> list[str]:
    """The ids in result links (`"href_result": "/images/b1c1"` -> b1c1): polls of the result
    belong to the task's job."""
    if document is None:
        return []
    out = []
    for layer in layers(document):
        for path in RESULT_FIELDS:
            raw = link(layer, path)
            segments = path_segments("http://x/" + raw.lstrip("/")) if raw and "://" not in raw else (
                path_segments(raw) if raw else [])
            if segments and looks_like_id(segments[-1]):
                out.append(segments[-1])
    return list(dict.fromkeys(out))


def _off_host(request_url: str, status_url: str | None, raw: str | None) -> str | None:
    """Where a client that stays on the host it called would poll a reference that names another
    host: a protocol-relative `//vaults/1` read as the path `/vaults/1`, or the other host's path."""
    if status_url is None or origin_of(status_url) == origin_of(request_url):
        return None
    base = split(request_url)
    if raw is not None and raw.startswith("//"):
        path, _, query = ("/" + raw.lstrip("/")).partition("?")
        return base._replace(path=path, query=query, fragment="").geturl()
    parts = split(status_url)
    return base._replace(path=parts.path or "/", query=parts.query, fragment="").geturl()


def _resolve(base: str, reference: object) -> str | None:
    """A reference resolved against the request URL; None when it is empty or not a usable URL
    (an unclosed IPv6 literal, a port that is no port)."""
    if not isinstance(reference, str) or not reference.strip():
        return None
    try:
        url = urljoin(base, reference.strip())
        urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    return url


def self_reference(url: str, *, method: str = "GET") -> JobReference:
    """The request's own URL as the job's status URL: a resource that answers 202 to GET while it
    is computed is its own status monitor; a PUT, PATCH or DELETE answered 202 without a
    reference is followed by polling the resource it changed."""
    job_id = id_from_url(url) or url
    if method == "GET":
        return JobReference(job_id=job_id, status_url=url, source="request-url", aliases=[])
    return JobReference(job_id=job_id, status_url=url, source="request-target",
                        aliases=[job_id] if looks_like_id(job_id) else [])


def _body_ids(document: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """Ids the body gives for the job: the named fields (in the document, then in the object it
    wraps), other id-named fields of those objects (`task-id`, `uuid`), and a bare id in `data`."""
    ids = []
    for layer in layers(document):
        for path in fields:
            value = scalar_id(lookup(layer, path))
            if value is None:
                continue
            if path == "name":
                if "/" not in value:  # only Google-style `operations/{id}` names identify a job
                    continue
                value = value.rstrip("/").rsplit("/", 1)[-1]
            ids.append(value)
        for key, raw in layer.items():
            value = scalar_id(raw)
            if isinstance(key, str) and key not in fields and names_the_job(key) and value and looks_like_id(value):
                ids.append(value)
    bare = document.get("data")
    if isinstance(bare, str) and looks_like_id(bare.strip()):
        ids.append(bare.strip())
    return list(dict.fromkeys(ids))


def names_a_job(ref: JobReference, document: Mapping[str, Any]) -> bool:
    """Signs that a 2xx body describes a job rather than a resource that happens to have a
    status: a status-monitor link, or an id field named for a job (`task-id`, `runId`)."""
    if ref.source.removeprefix("body.") in STATUS_LINKS:
        return True
    return any(isinstance(key, str) and names_the_job(key) for layer in layers(document) for key in layer)


def _confirming_values(document: Mapping[str, Any] | None, tokens: set[str]) -> list[str]:
    """Top-level id fields (`reportId`, `request_id`...) whose value appears in the status URL.
    Only id-named fields: a `location: eastus` also appears in Azure operation URLs."""
    if document is None:
        return []
    return [str(v) for k, v in document.items() if k.lower().endswith("id") and isinstance(v, str | int)
            and not isinstance(v, bool) and str(v) in tokens and len(str(v)) >= 2]


class Template(BaseModel):
    """A status-URL pattern such as `/v1/reports/status/{id}` (path only, any host)."""

    segments: tuple[str, ...]
    id_index: int

    @classmethod
    def parse(cls, text: str) -> "Template":
        segments = tuple(path_segments(text if text.startswith(("http://", "https://")) else "http://x" + text))
        if "{id}" not in segments:
            raise ValueError(f"status-URL template {text!r} has no {{id}} segment")
        return cls(segments=segments, id_index=segments.index("{id}"))

    @classmethod
    def learn(cls, status_url: str, job_id: str) -> "Template | None":
        segments = path_segments(status_url)
        if job_id not in segments:
            return None
        index = len(segments) - 1 - segments[::-1].index(job_id)
        return cls(segments=tuple("{id}" if i == index else s for i, s in enumerate(segments)), id_index=index)

    def match(self, url: str) -> str | None:
        """The id this URL names if it fits the template, else None."""
        segments = path_segments(url)
        if len(segments) != len(self.segments):
            return None
        for i, (want, got) in enumerate(zip(self.segments, segments)):
            if i != self.id_index and want != got:
                return None
        return segments[self.id_index]

    def __str__(self) -> str:
        return "/" + "/".join(self.segments)


def id_header_names(extra: Sequence[str] = ()) -> dict[str, None]:
    """The id headers `request_ids` keeps: ID_HEADERS and the user's, lower-cased, in that order
    (a dict as an ordered set: built once per tracker, not per poll)."""
    return dict.fromkeys((*ID_HEADERS, *(n.lower() for n in extra)))


def request_ids(headers: Headers, names: Mapping[str, None]) -> dict[str, str]:
    """Operation and request ids worth keeping for support tickets (`names` from id_header_names).
    Most exchanges carry none, and one set test over their few headers says so."""
    if names.keys().isdisjoint(headers.keys()):
        return {}
    return {name: headers[name] for name in names if name in headers}
