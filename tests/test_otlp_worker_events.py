"""Worker logs and spans written by OpenTelemetry, read as worker events: the Collector's file
exporter (OTLP/JSON lines), the Python SDK's console exporters (real SDK output to a file), and
the join by trace id with the traceparent a client sent through the proxy."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import pollwatch.logs.otlp  # noqa: F401 - registers the format
from pollwatch.core.states import State
from pollwatch.core.worker_join import WorkerJoin
from pollwatch.logs import FieldNames, read_worker_logs

try:
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as ConsoleLogExporter
except ImportError:  # SDKs before the rename
    from opentelemetry.sdk._logs.export import ConsoleLogExporter

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_767_000_000  # epoch seconds


def nanos(seconds: float) -> str:
    """Epoch nanoseconds as OTLP/JSON writes them (a string), exact for the test's times."""
    return str(int(seconds) * 1_000_000_000 + round((seconds % 1) * 1_000_000_000))


def value(v):
    return {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)}


def kv(**attributes):
    return [{"key": k.replace("__", "."), "value": value(v)} for k, v in attributes.items()]


def collector_logs(*records) -> str:
    """One ExportLogsServiceRequest, as the Collector's file exporter writes a line."""
    return json.dumps({"resourceLogs": [{"resource": {"attributes": kv(service__name="worker")}, "scopeLogs": [
        {"scope": {"name": "worker"}, "logRecords": list(records)}]}]})


def log_record(seconds: float, body, trace: str = "", **attributes) -> dict:
    record = {"timeUnixNano": nanos(seconds), "severityNumber": 9, "severityText": "INFO",
              "body": {"kvlistValue": {"values": kv(**body)}} if isinstance(body, dict) else {"stringValue": body},
              "attributes": kv(**attributes), "traceId": trace, "spanId": "eee19b7ec3c1b174" if trace else ""}
    return record


def collector_spans(*spans, scope: str = "worker") -> str:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": kv(service__name="worker")}, "scopeSpans": [
        {"scope": {"name": scope}, "spans": list(spans)}]}]})


def span(name: str, start: float, end: float, attributes: dict, events=(), trace: str = TRACE) -> dict:
    return {"traceId": trace, "spanId": "eee19b7ec3c1b174", "name": name, "kind": 1,
            "startTimeUnixNano": nanos(start), "endTimeUnixNano": nanos(end),
            "attributes": kv(**attributes),
            "events": [{"timeUnixNano": nanos(t), "name": n, "attributes": kv(**a)} for t, n, a in events]}


def read(tmp_path, text: str, name: str = "worker.otlp.jsonl", **names):
    path = tmp_path / name
    path.write_text(text)
    return read_worker_logs([path], names=FieldNames(**names) if names else None)


def test_collector_log_lines_give_job_state_time_and_trace_id(tmp_path):
    result = read(tmp_path, collector_logs(
        log_record(T0 + 1.5, "job started", TRACE, job__id="e-1", job__state="running"),
        log_record(T0 + 3.25, "job finished", TRACE, job__id="e-1", job__state="succeeded")) + "\n")
    assert result.formats == {"otlp": 1}
    assert [(e.job_id, e.state, e.ts, e.trace_id) for e in result.events] == [
        ("e-1", State.RUNNING, T0 + 1.5, TRACE), ("e-1", State.SUCCEEDED, T0 + 3.25, TRACE)]


def test_a_structured_log_body_is_read_like_a_json_line(tmp_path):
    result = read(tmp_path, collector_logs(log_record(T0, {"job_id": "e-2", "status": "failed", "msg": "boom"})))
    [event] = result.events
    assert (event.job_id, event.state, event.message, event.trace_id) == ("e-2", State.FAILED, "boom", None)


def test_span_attributes_and_span_events_carry_the_job_and_its_states(tmp_path):
    result = read(tmp_path, collector_spans(span("run export", T0, T0 + 2, {"job.id": "e-3"}, events=[
        (T0 + 0.5, "job.running", {}), (T0 + 2, "state", {"state": "succeeded"})])))
    assert [(e.job_id, e.state, e.ts, e.message) for e in result.events] == [
        ("e-3", None, T0 + 2, "run export"), ("e-3", State.RUNNING, T0 + 0.5, "job.running"),
        ("e-3", State.SUCCEEDED, T0 + 2, "state")]
    assert {e.trace_id for e in result.events} == {TRACE}


def test_spans_that_name_no_job_and_pollwatchs_own_exports_are_not_worker_events(tmp_path):
    text = "\n".join([collector_spans(span("SELECT jobs", T0, T0 + 1, {"db.system": "postgresql"})),
                      collector_spans(span("job e-4", T0, T0 + 1, {"job.id": "e-4"}), scope="pollwatch")])
    result = read(tmp_path, text)
    assert result.events == [] and result.bad == 0


def test_the_runs_field_names_and_clock_offset_apply(tmp_path):
    result = read(tmp_path, collector_logs(log_record(T0, "done", ticket="e-5", phase="Baked")),
                  job=["ticket"], state=["phase"], states={"Baked": "succeeded"}, clock_offset=2.0)
    [event] = result.events
    assert (event.job_id, event.state, event.ts) == ("e-5", State.SUCCEEDED, T0 + 2.0)


@pytest.fixture
def sdk_console_file(tmp_path):
    """What the Python SDK's console exporters write to a file: a span with an event, and a log
    record emitted inside it through the logging bridge."""
    path = tmp_path / "worker-console.txt"
    with open(path, "w") as out:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogExporter(out=out)))
        logger = logging.getLogger("test-otlp-worker")
        handler = LoggingHandler(logger_provider=logger_provider)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with tracer_provider.get_tracer("worker").start_as_current_span("export", attributes={"job.id": "e-6"}) as s:
                s.add_event("job.state", {"state": "running"})
                logger.info("export finished", extra={"job_id": "e-6", "state": "succeeded"})
            trace = f"{s.get_span_context().trace_id:032x}"
        finally:
            logger.removeHandler(handler)
            tracer_provider.shutdown()
            logger_provider.shutdown()
    return path, trace


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's logging bridge moves package
def test_the_sdk_console_exporters_output_is_read(sdk_console_file):
    path, trace = sdk_console_file
    result = read_worker_logs([path])
    assert result.formats == {"otlp": 1} and result.bad == 0
    assert sorted((e.job_id, e.state_word, e.trace_id) for e in result.events if e.state) == [
        ("e-6", "running", trace), ("e-6", "succeeded", trace)]


def test_a_damaged_document_is_counted_once_and_the_rest_still_read(tmp_path):
    good = collector_logs(log_record(T0, "done", job_id="e-7", state="succeeded"))
    result = read(tmp_path, "\n".join([good, good[: len(good) // 2], '{"resourceLogs": 7}', good]) + "\n")
    assert [e.job_id for e in result.events] == ["e-7", "e-7"] and result.bad == 2
    line = result.bad_line()
    assert line.startswith("2 line(s) could not be read; first at ") and ":2 (" in line and "\n" not in line


def test_a_worker_span_joins_the_job_whose_client_sent_its_trace_in_a_traceparent(tmp_path):
    """No job id in the worker's span: the trace id alone finds the job."""
    join = WorkerJoin()
    join.add_job("s/1", "e-8", created_at=T0)
    join.add_ids("s/1", [f"00-{TRACE}-00f067aa0ba902b7-01", "req-1"])
    result = read(tmp_path, collector_spans(span("process", T0, T0 + 1, {"job.state": "succeeded"})))
    [event] = result.events
    assert event.job_id is None and join.job_of(event) == "s/1"
