"""One job as one trace: a root span for the job, a child span for the creating request and for
each poll, state transitions and findings as span events on the exchange that revealed them.

The database already holds everything (URLs redacted, only allow-listed headers), so a trace
carries nothing the database does not. Ids are derived from the job key, so exporting the same
database twice gives the same trace, and a viewer shows one trace, not two; but when the client
sent a W3C `traceparent`, the job's trace takes that trace id, so the client's view of the job
lands in the same trace as the worker's spans."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from pollwatch import __version__
from pollwatch.core.worker import trace_id_of
from pollwatch.otel.attributes import key_values

__all__ = ["job_spans", "trace_request", "job_trace_id", "SCOPE"]

SCOPE = "pollwatch"
"""The instrumentation scope of every span pollwatch writes: a viewer can filter the client's view."""
TRANSITION_EVENT = "pollwatch.transition"
FINDING_EVENT = "pollwatch.finding"


def _digest(*parts: str, size: int) -> bytes:
    """`size` bytes of a hash of `parts`: stable across runs, never all zero (invalid in OTLP)."""
    raw = hashlib.sha256("\x1f".join(("pollwatch", *parts)).encode()).digest()[:size]
    return raw if any(raw) else b"\x01" * size


def _nanos(ts: float | None) -> int:
    """Epoch nanoseconds; whole seconds kept apart so the float's rounding stays below a microsecond."""
    return int(ts) * 1_000_000_000 + round(ts % 1 * 1_000_000_000) if ts else 0


def _traceparents(detail: dict[str, Any]) -> list[str]:
    return [p["ids"]["traceparent"] for p in detail["polls"] if p["ids"].get("traceparent")]


def job_trace_id(detail: dict[str, Any]) -> bytes:
    """The trace id of the first `traceparent` the client sent for this job, else one derived
    from the job key."""
    for value in _traceparents(detail):
        if trace := trace_id_of(value):
            return bytes.fromhex(trace)
    return _digest("trace", detail["job"]["key"], size=16)


def _link(traceparent: str) -> Span.Link | None:
    """A link to the client's span that sent this request (`00-<trace>-<span>-<flags>`)."""
    parts = traceparent.strip().split("-")
    if not trace_id_of(traceparent) or len(parts) < 3:
        return None
    return Span.Link(trace_id=bytes.fromhex(parts[1]), span_id=bytes.fromhex(parts[2]),
                     attributes=key_values({"pollwatch.link": "traceparent"}))


def _transition_event(t: dict[str, Any]) -> Span.Event:
    return Span.Event(name=TRANSITION_EVENT, time_unix_nano=_nanos(t["ts"]), attributes=key_values({
        "pollwatch.state.from": t["from_state"], "pollwatch.state.to": t["to_state"]}))


def _finding_event(f: dict[str, Any]) -> Span.Event:
    return Span.Event(name=FINDING_EVENT, time_unix_nano=_nanos(f["ts"]), attributes=key_values({
        "pollwatch.finding.code": f["code"], "pollwatch.finding.severity": f["severity"],
        "pollwatch.finding.message": f["message"], "pollwatch.finding.count": f["count"]}))


def _poll_span(poll: dict[str, Any], job: dict[str, Any], trace_id: bytes, parent: bytes) -> Span:
    """The creating request or one poll, as the client's request: method, URL, status, and what
    pollwatch read from it (state, cache verdict, who served it)."""
    status = poll["status"] or 0
    attributes = {
        "http.request.method": poll["method"], "url.full": poll["url"], "http.response.status_code": poll["status"],
        "job.id": job["job_id"], "pollwatch.kind": poll["kind"], "pollwatch.matched_by": poll["matched_by"],
        "pollwatch.state": poll["state"], "pollwatch.raw_state": poll["raw_state"],
        "pollwatch.cache_verdict": poll["cache_verdict"], "pollwatch.served_by": poll["served_by"],
        "pollwatch.flow_id": poll["flow_id"],
        **{f"http.request.header.{name}": [value] for name, value in poll["ids"].items()},
    }
    link = _link(poll["ids"].get("traceparent", ""))
    return Span(
        trace_id=trace_id, span_id=_digest("span", job["key"], str(poll["poll_id"]), size=8), parent_span_id=parent,
        name=f"{poll['method']} {poll['kind']}", kind=Span.SpanKind.SPAN_KIND_CLIENT,
        start_time_unix_nano=_nanos(poll["request_ts"] or poll["response_ts"]),
        end_time_unix_nano=_nanos(poll["response_ts"] or poll["request_ts"]),
        attributes=key_values(attributes), links=[link] if link else [],
        status=Status(code=Status.STATUS_CODE_ERROR if status >= 400 else Status.STATUS_CODE_UNSET),
    )


def _root_span(detail: dict[str, Any], trace_id: bytes, times: list[float]) -> Span:
    job = detail["job"]
    errors = [f for f in detail["findings"] if f["severity"] == "error"]
    traces = sorted({t for t in map(trace_id_of, _traceparents(detail)) if t})
    attributes = {
        "job.id": job["job_id"], "pollwatch.job.id": job["job_id"], "pollwatch.job.key": job["key"],
        "pollwatch.session.id": job["session_id"], "pollwatch.status_url": job["status_url"],
        "pollwatch.host": job["host"], "pollwatch.job.states": job["states"],
        "pollwatch.job.last_state": job["last_state"], "pollwatch.job.terminal_state": job["terminal_state"],
        "pollwatch.job.polls": job["polls"], "pollwatch.trace_ids": traces,
        "pollwatch.finding.codes": sorted({f["code"] for f in detail["findings"]}),
        **{f"pollwatch.operation_id.{name}": value for name, value in job["operation_ids"].items()},
    }
    status = (Status(code=Status.STATUS_CODE_ERROR, message=", ".join(sorted({f["code"] for f in errors})))
              if errors else Status())
    return Span(trace_id=trace_id, span_id=_digest("span", job["key"], size=8), name=f"job {job['job_id']}",
                kind=Span.SpanKind.SPAN_KIND_INTERNAL, start_time_unix_nano=_nanos(min(times)),
                end_time_unix_nano=_nanos(max(times)), attributes=key_values(attributes), status=status)


def job_spans(detail: dict[str, Any]) -> list[Span]:
    """The spans of one job (`pollwatch.store.query.job_detail`): the root first, then each
    exchange in time order; events go to the exchange whose flow revealed them, else the root."""
    trace_id = job_trace_id(detail)
    polls = detail["polls"]
    times = [t for t in (detail["job"]["created_at"], *(p["request_ts"] for p in polls),
                         *(p["response_ts"] for p in polls), *(t["ts"] for t in detail["transitions"]),
                         *(f["ts"] for f in detail["findings"])) if t]
    root = _root_span(detail, trace_id, times)
    children = [_poll_span(p, detail["job"], trace_id, root.span_id) for p in polls]
    by_flow = {p["flow_id"]: span for p, span in zip(polls, children, strict=True) if p["flow_id"]}
    for transition in detail["transitions"]:
        by_flow.get(transition["flow_id"], root).events.append(_transition_event(transition))
    for finding in detail["findings"]:
        by_flow.get(finding["flow_id"], root).events.append(_finding_event(finding))
    return [root, *children]


def trace_request(details: Iterable[dict[str, Any]], service_name: str = "pollwatch") -> ExportTraceServiceRequest:
    """One OTLP export request holding the traces of `details` (one resource, one scope)."""
    spans = [span for detail in details for span in job_spans(detail)]
    resource = Resource(attributes=key_values({"service.name": service_name}))
    scope = InstrumentationScope(name=SCOPE, version=__version__)
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=spans)])])
