"""Worker logs and spans written by OpenTelemetry, as flat records a worker-log mapper reads.

Two file shapes exist in the wild, both read here:
- OTLP/JSON: `ExportLogsServiceRequest`/`ExportTraceServiceRequest` documents, one per line as
  the Collector's file exporter (and the SDKs' OTLP file/stdout exporters) write them, or one
  pretty-printed document; parsed with the `opentelemetry-proto` messages.
- The Python SDK's `ConsoleSpanExporter`/`ConsoleLogExporter` (to stdout or a file): one
  indented JSON object per span or log record, `0x` hex ids and ISO times.
A log record is one record; a span is one record at its end (its attributes) and one per span
event (the span's attributes overlaid with the event's), so `job.id` set on the span applies to
its events. pollwatch's own exports (scope `pollwatch`) are the client's view and are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pollwatch.core.references import ID_HEADERS
from pollwatch.otel.attributes import plain, plain_attributes
from pollwatch.otel.jsonform import from_otlp_json
from pollwatch.otel.trace import SCOPE

__all__ = ["OtelRecord", "Unreadable", "read_otel_records", "looks_like_otel"]

ALIASES: dict[str, tuple[str, ...]] = {
    "job_id": ("job.id", "job.key"),
    "state": ("job.state", "job.status"),
    "operation_id": ("operation.id",),
    "request_id": ("request.id", *(f"http.request.header.{h}" for h in ID_HEADERS if h != "traceparent")),
    "traceparent": ("http.request.header.traceparent",),
}
"""OpenTelemetry's dotted attribute names for what worker logs call `job_id`, `state`, ...: each
record also gets the plain name, so the default (and the user's) field names find them."""
_OTLP_START = re.compile(r'\s*\{\s*"(resourceLogs|resourceSpans|resource_logs|resource_spans)"\s*:')
_CONSOLE_START = re.compile(r'\s*\{\s*"(name|body)"\s*:')
_ZERO_ID = re.compile(r"^0*$")


@dataclass
class OtelRecord:
    """One log record, span or span event: its fields, time (epoch seconds), trace id, place."""

    fields: dict[str, Any]
    ts: float | None
    trace_id: str | None
    source: str


@dataclass
class Unreadable:
    """A document that is not JSON or not OTLP: where, why, and its first characters."""

    source: str
    reason: str
    text: str = field(repr=False)


def looks_like_otel(head: str) -> bool:
    """The first characters of an OTLP/JSON file or of the SDK's console exporter output."""
    if _OTLP_START.match(head):
        return True
    return bool(_CONSOLE_START.match(head)) and ('"context"' in head or '"severity_number"' in head)


def _trace(value: Any) -> str | None:
    text = str(value or "").lower().removeprefix("0x")
    return text if len(text) == 32 and not _ZERO_ID.match(text) else None


def _fields(attributes: Mapping[str, Any], *, body: Any = None, event: str | None = None) -> dict[str, Any]:
    """Attributes over a structured body; a text body is the message, an event's name its event."""
    out: dict[str, Any] = {**(body if isinstance(body, Mapping) else {}), **attributes}
    if body is not None and not isinstance(body, Mapping):
        out.setdefault("message", body)
    if event:
        out.setdefault("event", event)
    for name, dotted in ALIASES.items():
        value = next((out[k] for k in dotted if out.get(k) not in (None, "", [])), None)
        if name not in out and value is not None:
            out[name] = value[0] if isinstance(value, list) else value
    return out


def _seconds(nanos: int) -> float | None:
    """Epoch seconds from nanoseconds, split first: a float holds neither to the nanosecond."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    return seconds + rest / 1_000_000_000 if nanos else None


def _iso(value: Any) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


# --- OTLP/JSON ------------------------------------------------------------------------------

def _not_ours(resources: Iterable[Any], scopes: str, items: str) -> Iterator[Any]:
    """The log records or spans of every instrumentation scope but pollwatch's own export."""
    for resource in resources:
        for scope in getattr(resource, scopes):
            if scope.scope.name != SCOPE:
                yield from getattr(scope, items)


def _otlp_logs(message: ExportLogsServiceRequest, source: str) -> Iterator[OtelRecord]:
    for log in _not_ours(message.resource_logs, "scope_logs", "log_records"):
        body = plain(log.body) if log.HasField("body") else None
        fields = _fields(plain_attributes(log.attributes), body=body, event=getattr(log, "event_name", None))
        yield OtelRecord(fields, _seconds(log.time_unix_nano or log.observed_time_unix_nano),
                         _trace(log.trace_id.hex()), source)


def _otlp_spans(message: ExportTraceServiceRequest, source: str) -> Iterator[OtelRecord]:
    for span in _not_ours(message.resource_spans, "scope_spans", "spans"):
        attributes = plain_attributes(span.attributes)
        trace = _trace(span.trace_id.hex())
        yield OtelRecord({"message": span.name} | _fields(attributes), _seconds(span.end_time_unix_nano),
                         trace, source)
        for event in span.events:
            fields = _fields(attributes | plain_attributes(event.attributes), event=event.name)
            yield OtelRecord({"message": event.name} | fields, _seconds(event.time_unix_nano), trace, source)


def _otlp(document: dict[str, Any], source: str) -> Iterator[OtelRecord]:
    if "resourceLogs" in document or "resource_logs" in document:
        yield from _otlp_logs(from_otlp_json(document, ExportLogsServiceRequest()), source)
    else:
        yield from _otlp_spans(from_otlp_json(document, ExportTraceServiceRequest()), source)


# --- the Python SDK's console exporters -----------------------------------------------------

def _console(document: dict[str, Any], source: str) -> Iterator[OtelRecord]:
    attributes = document.get("attributes") or {}
    if "context" in document:  # a span
        trace = _trace((document.get("context") or {}).get("trace_id"))
        name = document.get("name")
        yield OtelRecord({"message": name} | _fields(attributes), _iso(document.get("end_time")), trace, source)
        for event in document.get("events") or []:
            fields = _fields({**attributes, **(event.get("attributes") or {})}, event=event.get("name"))
            yield OtelRecord({"message": event.get("name")} | fields, _iso(event.get("timestamp")), trace, source)
    else:  # a log record
        ts = _iso(document.get("timestamp")) or _iso(document.get("observed_timestamp"))
        yield OtelRecord(_fields(attributes, body=document.get("body"), event=document.get("event_name")),
                         ts, _trace(document.get("trace_id")), source)


def _records(document: Any, source: str) -> Iterator[OtelRecord]:
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if any(k in document for k in ("resourceLogs", "resourceSpans", "resource_logs", "resource_spans")):
        yield from _otlp(document, source)
    elif "context" in document or "body" in document or "severity_number" in document:
        yield from _console(document, source)
    else:
        raise ValueError("neither OTLP/JSON (resourceLogs, resourceSpans) nor an SDK console exporter object")


def read_otel_records(text: str, name: str) -> Iterator[OtelRecord | Unreadable]:
    """Every record of the JSON documents in `text` (one per line, or indented and concatenated);
    a document that cannot be read is one `Unreadable` and reading resumes at the next line."""
    decoder = json.JSONDecoder()
    position = counted = 0
    line = 1
    while (start := _skip_blank(text, position)) < len(text):
        line += text.count("\n", counted, start)
        counted = start
        source = f"{name}:{line}"
        try:
            document, position = decoder.raw_decode(text, start)
            records = list(_records(document, source))
        except ValueError as exc:
            end = text.find("\n", start)
            position = len(text) if end < 0 else end + 1
            yield Unreadable(source, str(exc).splitlines()[0][:200] if str(exc) else "unreadable",
                             text[start:position].strip())
            continue
        yield from records


def _skip_blank(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
