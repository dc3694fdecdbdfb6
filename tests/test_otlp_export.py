"""`pollwatch export --otlp`: jobs captured by a real mitmdump, exported as OTLP traces to a file
(read back with the OpenTelemetry proto classes) and to a real OTLP/HTTP receiver on loopback.
One capture for the module: a job whose client sends a W3C traceparent, and one that does not."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pollwatch.cli.app import main
from pollwatch.demo.api import SampleAPI, Timing
from pollwatch.demo.proxy import ProxyProcess

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def traceparent(span: int) -> str:
    return f"00-{CLIENT_TRACE}-{span:016x}-01"


def poll_until_done(client: httpx.Client, url: str, headers=lambda n: {}) -> None:
    for n in range(1, 60):
        if client.get(url, headers=headers(n)).json()["status"] in ("succeeded", "failed"):
            return
        time.sleep(0.05)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """(db, traced job id, plain job id): a cached-status job polled with traceparents, then a
    healthy job without them, both through a real mitmdump."""
    db = tmp_path_factory.mktemp("otlp") / "live.sqlite"
    with (SampleAPI(timing=Timing(queued_s=0.1, running_s=0.1)) as api, ProxyProcess(db) as proxy,
          httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as client):
        traced = client.post(f"{api.url}/api/exports?fault=cached-status",
                             headers={"traceparent": traceparent(1), "x-request-id": "req-create"}).json()["id"]
        poll_until_done(client, f"{api.url}/api/exports/{traced}",
                        lambda n: {"traceparent": traceparent(n + 1), "x-request-id": f"req-{n}"})
        plain = client.post(f"{api.url}/api/exports").json()["id"]
        poll_until_done(client, f"{api.url}/api/exports/{plain}")
        time.sleep(0.6)  # the writer flushes twice a second
    return db, traced, plain


def run(*args: str):
    return CliRunner().invoke(main, ["export", *args])


def parse(document: dict) -> ExportTraceServiceRequest:
    """OTLP/JSON's hex ids back to protobuf JSON's base64, then the real proto parser."""
    def convert(value):
        if isinstance(value, dict):
            return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ID_FIELDS and v else convert(v)
                    for k, v in value.items()}
        return [convert(v) for v in value] if isinstance(value, list) else value
    return json_format.ParseDict(convert(document), ExportTraceServiceRequest())


def exported(capture, tmp_path, *extra: str) -> list[ExportTraceServiceRequest]:
    db, *_ = capture
    out = tmp_path / "jobs.otlp.jsonl"
    result = run("--otlp", str(out), "--db", str(db), *extra)
    assert result.exit_code == 0, result.output
    return [parse(json.loads(line)) for line in out.read_text().splitlines()]


def spans_of(requests) -> list:
    return [s for r in requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def attrs(item) -> dict:
    return {a.key: json_format.MessageToDict(a.value) for a in item.attributes}


def job_spans(requests, job_id: str) -> list:
    root = next(s for s in spans_of(requests) if s.name == f"job {job_id}")
    return [root, *(s for s in spans_of(requests) if s.parent_span_id == root.span_id)]


def test_each_job_is_one_line_and_one_trace_with_a_root_and_a_span_per_exchange(capture, tmp_path):
    db, traced, plain = capture
    requests = exported(capture, tmp_path)
    assert len(requests) == 2
    for job_id in (traced, plain):
        root, *children = job_spans(requests, job_id)
        assert [c.name for c in children][:2] == ["POST create", "GET poll"] and len(children) >= 3
        assert {s.trace_id for s in [root, *children]} == {root.trace_id}


def test_a_poll_span_carries_method_url_status_state_cache_verdict_and_served_by(capture, tmp_path):
    _, traced, _ = capture
    _, create, poll, *_ = job_spans(exported(capture, tmp_path), traced)
    a = attrs(poll)
    assert a["http.request.method"] == {"stringValue": "GET"}
    assert a["url.full"]["stringValue"].endswith(f"/api/exports/{traced}")
    assert a["http.response.status_code"] == {"intValue": "200"}
    assert a["pollwatch.cache_verdict"] == {"stringValue": "fresh"}  # max-age=30
    assert a["pollwatch.served_by"] == {"stringValue": "origin"} and "pollwatch.state" in a
    assert attrs(create)["http.request.header.x-request-id"] == {"arrayValue": {"values": [{"stringValue": "req-create"}]}}


def test_the_job_id_is_an_attribute_of_every_span(capture, tmp_path):
    _, traced, _ = capture
    spans = job_spans(exported(capture, tmp_path), traced)
    assert {attrs(s)["job.id"]["stringValue"] for s in spans} == {traced}


def test_transitions_and_findings_are_span_events(capture, tmp_path):
    _, traced, _ = capture
    spans = job_spans(exported(capture, tmp_path), traced)
    events = [(e.name, attrs(e)) for s in spans for e in s.events]
    moves = [(a["pollwatch.state.from"]["stringValue"] if "pollwatch.state.from" in a else None,
              a["pollwatch.state.to"]["stringValue"]) for name, a in events if name == "pollwatch.transition"]
    assert moves[0] == (None, "queued") and moves[-1][1] == "succeeded"
    codes = {a["pollwatch.finding.code"]["stringValue"] for name, a in events if name == "pollwatch.finding"}
    assert "status-cacheable" in codes


def test_a_job_whose_client_sent_a_traceparent_takes_its_trace_id_and_links_the_clients_spans(capture, tmp_path):
    _, traced, _ = capture
    root, create, *_ = job_spans(exported(capture, tmp_path), traced)
    assert root.trace_id.hex() == CLIENT_TRACE
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in create.links] == [(CLIENT_TRACE, f"{1:016x}")]


def test_re_exporting_gives_the_same_trace_ids_and_bytes(capture, tmp_path):
    db, _, plain = capture
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run("--otlp", str(first), "--db", str(db)).exit_code == 0
    assert run("--otlp", str(second), "--db", str(db)).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    assert job_spans([parse(json.loads(line)) for line in first.read_text().splitlines()], plain)[0].trace_id.hex() \
        != CLIENT_TRACE


def test_job_selects_one_job(capture, tmp_path):
    _, _, plain = capture
    requests = exported(capture, tmp_path, "--job", plain)
    assert {s.name for s in spans_of(requests) if not s.parent_span_id} == {f"job {plain}"}


class Receiver:
    """A tiny OTLP/HTTP traces receiver on 127.0.0.1: decodes each request, answers as the spec says."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers["Content-Type"], ExportTraceServiceRequest.FromString(body)))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_export_to_a_loopback_otlp_http_endpoint_posts_protobuf_to_v1_traces(capture, receiver, tmp_path):
    db, traced, _ = capture
    result = run("--otlp", receiver.url, "--db", str(db))
    assert result.exit_code == 0, result.output
    [(path, content_type, request)] = receiver.received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert len(spans_of([request])) == len(spans_of(exported(capture, tmp_path)))
    assert f"{len(spans_of([request]))} span(s) to {receiver.url}/v1/traces" in result.output


def test_a_non_loopback_endpoint_is_refused_with_one_line(capture):
    db, *_ = capture
    result = run("--otlp", "http://192.0.2.10:4318/v1/traces", "--db", str(db))
    assert result.exit_code == 1
    assert result.output.startswith("Error: refusing to send to '192.0.2.10'") and result.output.count("\n") == 1


def test_an_unreachable_endpoint_is_one_line(capture, receiver):
    db, *_ = capture
    url = receiver.url
    receiver.close()
    result = run("--otlp", url, "--db", str(db))
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "cannot send the export" in result.output


def test_a_file_that_cannot_be_written_is_one_line_and_leaves_nothing(capture, tmp_path):
    db, *_ = capture
    result = run("--otlp", str(tmp_path / "missing" / "jobs.jsonl"), "--db", str(db))
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "cannot write the export" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_worker_span_in_the_clients_trace_joins_the_captured_job_by_trace_id(capture, tmp_path):
    """The worker's span names no job: only the trace id of the traceparent the client sent."""
    import pollwatch.logs.otlp  # noqa: F401 - registers the OTLP worker log format

    db = shutil.copy(capture[0], tmp_path / "joined.sqlite")  # the other tests keep the capture as it was
    now = str(time.time_ns())
    worker = tmp_path / "worker-traces.otlp.jsonl"
    worker.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "worker"}, "spans": [{
        "traceId": CLIENT_TRACE, "spanId": "00f067aa0ba902b7", "name": "export", "startTimeUnixNano": now,
        "endTimeUnixNano": now, "attributes": [{"key": "job.state", "value": {"stringValue": "succeeded"}}]}]}]}]}))
    result = CliRunner().invoke(main, ["worker-log", str(worker), "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["events"], json.loads(result.stdout)["linked"]) == (1, 1)
