"""Text from the traffic that is not valid UTF-8 (issue 16): a lone surrogate (`\\ud800` escaped
in JSON) that reaches a job id, a state word or a URL must never break what pollwatch writes into
a flow (mitmproxy's `-w` recording encodes comments as UTF-8) or the log (mitmdump's terminal)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import ThreadingHTTPServer

import pytest
from mitmproxy import io as mitm_io
from mitmproxy.test import taddons

from pollwatch.demo.proxy import ProxyProcess
from pollwatch.mitm.addon import PollWatch
from helpers import QuietHandler, raw_request
from test_addon_hooks import make_flow

SURROGATE = "\ud800"
HOSTILE_BODIES = {
    "/api/a": {"id": f"a-{SURROGATE}", "status": "queued"},
    "/api/b": {"id": "b-1", "status": "queued", "href": f"/api/b/{SURROGATE}"},
    "/api/c": {"id": f"c-{SURROGATE}", "status": f"Baking{SURROGATE}", "href": f"/api/c/c-{SURROGATE}"},
}
"""Creating responses (POST answered 202): the surrogate in the id, in the status link, in the state."""


class _HostileServer(ThreadingHTTPServer):
    """Loopback origin: POST answers 202 with a hostile document; GET answers a hostile status."""

    daemon_threads = True

    def __init__(self) -> None:
        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                self._send(202, HOSTILE_BODIES.get(self.path, {"id": SURROGATE, "status": "queued"}))

            def do_GET(self) -> None:
                self._send(200, {"id": f"a-{SURROGATE}", "status": f"Cooling{SURROGATE}"})

            def _send(self, status: int, document: dict) -> None:
                body = json.dumps(document).encode()  # ensure_ascii: the surrogate travels as \ud800
                self.answer(status, body, {"Content-Type": "application/json",
                                           "Cache-Control": "max-age=30"})  # a finding on every status poll

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def origin():
    server = _HostileServer()
    yield server
    server.shutdown()
    server.server_close()


def test_a_recording_keeps_every_flow_whose_job_carries_a_lone_surrogate(tmp_path, origin):
    recording = tmp_path / "hostile.flows"
    requests = [("POST", "/api/a"), ("POST", "/api/b"), ("POST", "/api/c"), ("GET", "/api/b/%ED%A0%80"),
                ("GET", "/api/c/c-%ED%A0%80"), ("GET", "/api/a/a-%FF"), ("POST", "/api/other")] * 3
    with ProxyProcess(tmp_path / "live.sqlite", record=recording) as proxy:
        for method, path in requests:
            raw_request(proxy, method, origin.origin + path)
        code = proxy.stop()
    with recording.open("rb") as file:
        kept = list(mitm_io.FlowReader(file).stream())
    assert len(kept) == len(requests)
    assert "internal error" not in proxy.output() and "Traceback" not in proxy.output()
    assert "UnicodeEncodeError" not in proxy.output() and code == 0
    assert any("[pollwatch] warning: status-cacheable" in line for line in proxy.lines)


async def test_the_job_table_command_gives_encodable_lines(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="")
        await tctx.cycle(addon, make_flow("POST", "http://api.test/api/a", 202, json.dumps(HOSTILE_BODIES["/api/c"]),
                                          {"Content-Type": "application/json"}))
        lines = addon.jobs()
    assert len(lines) == 2
    for line in lines:
        line.encode("utf-8")


async def test_the_job_of_a_flow_command_gives_encodable_lines(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="")
        flow = make_flow("POST", "http://api.test/api/c", 202, json.dumps(HOSTILE_BODIES["/api/c"]),
                         {"Content-Type": "application/json"})
        await tctx.cycle(addon, flow)
        lines = addon.job([flow])
    assert f"c-{SURROGATE}" not in lines[0] and " c-" in lines[0]
    lines[0].encode("utf-8")


async def test_every_log_line_pollwatch_writes_is_encodable(tmp_path, caplog):
    addon = PollWatch()
    with taddons.context(addon) as tctx, caplog.at_level(logging.DEBUG, logger="pollwatch"):
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"), pollwatch_session=f"s-{SURROGATE}")
        for path, document in HOSTILE_BODIES.items():
            await tctx.cycle(addon, make_flow("POST", f"http://api.test{path}", 202, json.dumps(document),
                                              {"Content-Type": "application/json"}))
        addon.done()
    assert caplog.records
    for record in caplog.records:
        record.getMessage().encode("utf-8")


async def test_an_internal_error_quoting_the_traffic_is_logged_as_an_encodable_line(caplog):
    addon = PollWatch()
    with taddons.context(addon) as tctx, caplog.at_level(logging.DEBUG, logger="pollwatch"):
        tctx.configure(addon, pollwatch_db="")

        def broken(obs):
            raise ValueError(f"cannot read {obs.url} {SURROGATE}")

        addon.tracker.observe = broken
        await tctx.cycle(addon, make_flow("GET", "http://api.test/api/a/1", 200, b"{}"))
    assert addon.internal_errors == 1
    lines = [logging.Formatter().format(record) for record in caplog.records]
    assert any("internal error" in line and "ValueError" in line for line in lines)
    for line in lines:
        line.encode("utf-8")
