"""OpenTelemetry worker logs and spans (OTLP/JSON files, the SDK's console exporter output) as a
worker log format: each record goes through the same `Mapper` as a JSON line, so the field names,
state words and clock offset of the run apply, and its trace id is kept for the join.

A record counts when it names a job, an operation or a state by its own fields; a trace id alone
does not make one (every span has one), but it is attached to each event for joining by trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pollwatch.core.worker import WorkerEvent
from pollwatch.errors import ReadError
from pollwatch.logs.base import Bad, register
from pollwatch.logs.fields import Mapper, NoTime
from pollwatch.otel.reading import OtelRecord, Unreadable, looks_like_otel, read_otel_records

__all__ = ["OtlpJson", "worker_event"]

TIME_FIELD = "ts"
"""Where a record carries its OTLP time for the mapper (one of the default time fields)."""


def worker_event(record: OtelRecord, mapper: Mapper) -> WorkerEvent | None:
    """The event a record describes, with its trace id; None when it says nothing about a job.
    Raises NoTime for a record about a job without a time."""
    fields = record.fields | ({TIME_FIELD: record.ts} if record.ts is not None else {})
    event = mapper.event(fields, record.source)
    if event is None or record.trace_id is None or event.trace_id is not None:
        return event
    return WorkerEvent(**event.model_dump(exclude={"trace_id"}), trace_id=record.trace_id)


class OtlpJson:
    """OTLP/JSON logs and traces, and the Python SDK's console exporter objects."""

    name = "otlp"

    def sniff(self, head: str) -> bool:
        return looks_like_otel(head)

    def read(self, path: Path, mapper: Mapper) -> Iterator[WorkerEvent | Bad]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ReadError(f"{path}: cannot read ({exc.strerror})") from exc
        for item in read_otel_records(text, str(path)):
            if isinstance(item, Unreadable):
                yield Bad(item.source, item.reason, item.text)
                continue
            try:
                event = worker_event(item, mapper)
            except NoTime as exc:
                yield Bad(item.source, str(exc), str(item.fields.get("message") or ""))
                continue
            if event is not None:
                yield event


register(OtlpJson(), first=True)
