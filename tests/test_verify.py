"""Active verification live: the addon under mitmproxy's test context, a real sample job API on
loopback, and pollwatch's own checks going to it over the network. The client's exchanges are
real requests to the API, handed to the addon as flows (the proxy's part); the checks are
pollwatch's own, counted at the origin by their marker header."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time

import httpx
import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from pollwatch.core.verification import CHECK_HEADER
from pollwatch.demo.api import STUCK_ETAG, SampleAPI, Timing
from pollwatch.mitm.addon import PollWatch

QUICK = Timing(queued_s=0.15, running_s=0.15)
"""Jobs succeed 0.3 s after creation."""


class Origin:
    """The sample API, counting the requests that carry pollwatch's marker (and what they sent)."""

    def __init__(self, timing: Timing = QUICK) -> None:
        self.server = SampleAPI(timing=timing).start()
        self.checks: list[dict[str, str]] = []
        self.cookie_lines: list[list[str]] = []
        app = self.server._api  # the application behind the sockets
        handle = app.handle

        def counting(request):
            if request.headers.get(CHECK_HEADER):
                self.checks.append(dict(request.headers.items()))
                self.cookie_lines.append(request.headers.get_all("Cookie") or [])
            return handle(request)

        app.handle = counting

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def origin():
    server = Origin()
    yield server
    server.stop()


@pytest.fixture
def watch(tmp_path):
    """The addon with verification on, every qualifying poll checked (no interval)."""
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"), pollwatch_verify=True,
                       pollwatch_verify_interval=0)
        yield addon, tctx
        addon.done()


def exchange(method: str, url: str, headers: dict[str, str] | None = None) -> http.HTTPFlow:
    """A real request to the API, as the flow the proxy would have seen."""
    start = time.time()
    answer = httpx.request(method, url, headers=headers, trust_env=False)
    end = time.time()
    request = http.Request.make(method, url, b"", headers or {})
    response = http.Response.make(answer.status_code, answer.content,
                                  [(k.encode(), v.encode()) for k, v in answer.headers.multi_items()])
    flow = tflow.tflow(req=request, resp=response)
    request.timestamp_start, response.timestamp_start, response.timestamp_end = start, end, end
    return flow


async def create(tctx, addon, origin: Origin, fault: str) -> str:
    flow = exchange("POST", f"{origin.url}/api/exports?fault={fault}")
    await tctx.cycle(addon, flow)
    return f"{origin.url}/api/exports/{json.loads(flow.response.content)['id']}"


def stored(db, sql: str, *args) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


async def test_a_stuck_etag_is_etag_reused_across_states_even_when_the_client_only_saw_304s(watch, origin, tmp_path):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "etag-stuck")
    await asyncio.sleep(0.35)  # the job has succeeded by now; its ETag is the same as ever
    poll = exchange("GET", status_url, {"If-None-Match": STUCK_ETAG, "Authorization": "Bearer t0ken"})
    assert poll.response.status_code == 304
    await tctx.cycle(addon, poll)
    await addon.verifier.drain()
    addon.done()
    [finding] = stored(tmp_path / "pw.sqlite", "select * from findings where code = 'etag-reused-across-states'")
    assert finding["severity"] == "error" and json.loads(finding["evidence"])["states"] == ["queued", "succeeded"]
    [sent] = origin.checks
    assert sent["Authorization"] == "Bearer t0ken" and sent["Cache-Control"] == "no-cache"
    assert "If-None-Match" not in sent


async def test_max_age_then_silence_puts_the_origins_state_on_polling_abandoned(watch, origin, tmp_path):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "cached-status")
    await tctx.cycle(addon, exchange("GET", status_url))  # queued, max-age=30: the client asks no more
    await addon.verifier.drain()
    await asyncio.sleep(0.35)  # meanwhile the job succeeds at the origin
    addon.tick(time.time() + 120)
    await addon.verifier.drain()
    addon.done()
    [finding] = stored(tmp_path / "pw.sqlite", "select * from findings where code = 'polling-abandoned'")
    check = json.loads(finding["evidence"])["origin_check"]
    assert (check["origin_state"], check["client_last_state"]) == ("succeeded", "queued")
    assert "the origin reached succeeded by" in finding["message"]
    assert "the client's last seen state was queued" in finding["message"]
    assert [c["result"] for c in stored(tmp_path / "pw.sqlite", "select result from checks order by id")] == [
        "checked", "origin ahead"]


async def test_verification_never_changes_the_clients_flow(watch, origin):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "etag-stuck")
    flows = [exchange("GET", status_url), exchange("GET", status_url, {"If-None-Match": STUCK_ETAG})]
    before = [(f.request.get_state(), f.response.get_state()) for f in flows]
    for flow in flows:
        await tctx.cycle(addon, flow)
    await addon.verifier.drain()
    assert origin.checks  # the 304 was checked ...
    assert [(f.request.get_state(), f.response.get_state()) for f in flows] == before  # ... and nothing changed


async def test_checks_are_rate_limited_under_a_fast_poller(tmp_path):
    origin = Origin(Timing(queued_s=30, running_s=30))  # queued throughout: every poll is worth a check
    addon = PollWatch()
    try:
        with taddons.context(addon) as tctx:
            tctx.configure(addon, pollwatch_db="", pollwatch_verify=True, pollwatch_verify_interval=1)
            status_url = await create(tctx, addon, origin, "cached-status")
            polls, start = 0, time.monotonic()
            while time.monotonic() - start < 1.5:  # a poll every 50 ms
                await tctx.cycle(addon, exchange("GET", status_url))
                polls += 1
                await asyncio.sleep(0.05)
            await addon.verifier.drain()
            addon.done()
    finally:
        origin.stop()
    assert polls >= 10 and len(origin.checks) == 2  # at 0 s and at the first poll after 1 s


async def test_an_unreachable_origin_is_stored_as_a_failed_check_without_a_finding(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"), pollwatch_verify=True)
        for flow in (
            tflow.tflow(req=http.Request.make("POST", f"{base}/api/exports"),
                        resp=http.Response.make(202, b'{"id": "e-1", "status": "queued"}', {"Location": "/api/exports/e-1"})),
            tflow.tflow(req=http.Request.make("GET", f"{base}/api/exports/e-1"),
                        resp=http.Response.make(200, b'{"id": "e-1", "status": "queued"}', {"Cache-Control": "max-age=30"})),
        ):
            await tctx.cycle(addon, flow)
        await addon.verifier.drain()
        addon.done()
    assert addon.internal_errors == 0
    [check] = stored(tmp_path / "pw.sqlite", "select * from checks")
    assert check["result"] == "check failed" and check["detail"] and check["status"] is None
    findings = stored(tmp_path / "pw.sqlite", "select code, evidence from findings order by code")
    assert [f["code"] for f in findings] == ["polling-abandoned", "status-cacheable"]  # the client's, at capture end
    assert not any("verified_by" in f["evidence"] or "origin_check" in f["evidence"] for f in findings)


async def test_verification_is_off_by_default(origin):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="")
        status_url = await create(tctx, addon, origin, "etag-stuck")
        for headers in (None, {"If-None-Match": STUCK_ETAG}):
            await tctx.cycle(addon, exchange("GET", status_url, headers))
        await asyncio.sleep(0.1)
        await addon.verifier.drain()
        addon.done()
    assert origin.checks == [] and addon.tracker.jobs


async def test_recorded_flows_are_not_checked_at_their_origin(watch, origin):
    """`mitmdump -nr`: flows read from a file are not live; their origin is not asked."""
    addon, tctx = watch
    flows = [exchange("POST", f"{origin.url}/api/exports?fault=etag-stuck")]
    status_url = f"{origin.url}/api/exports/{json.loads(flows[0].response.content)['id']}"
    flows += [exchange("GET", status_url, headers) for headers in (None, {"If-None-Match": STUCK_ETAG})]
    for flow in flows:
        flow.live = False
        await tctx.cycle(addon, flow)
    await asyncio.sleep(0.1)
    await addon.verifier.drain()
    assert origin.checks == [] and len(addon.tracker.jobs) == 1


async def test_a_flow_carrying_the_check_marker_is_not_watched(watch, origin):
    addon, tctx = watch
    await tctx.cycle(addon, exchange("POST", f"{origin.url}/api/exports", {CHECK_HEADER: "1"}))
    assert addon.tracker.jobs == {}


async def test_header_bytes_outside_ascii_reach_the_origin_as_the_client_sent_them(watch, origin, tmp_path):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "etag-stuck")
    poll = exchange("GET", status_url, {"If-None-Match": STUCK_ETAG})
    poll.request.headers.fields = (*poll.request.headers.fields, (b"Cookie", "sid=café".encode()))
    await tctx.cycle(addon, poll)
    await addon.verifier.drain()
    addon.done()
    assert origin.cookie_lines == [["sid=café".encode().decode("latin-1")]]  # http.server reads headers as Latin-1
    assert "check failed" not in {c["result"] for c in stored(tmp_path / "pw.sqlite", "select result from checks")}


async def test_cookie_crumbs_of_an_http2_client_are_sent_as_one_cookie_line(watch, origin):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "etag-stuck")
    poll = exchange("GET", status_url, {"If-None-Match": STUCK_ETAG})
    poll.request.headers.fields = (*poll.request.headers.fields, (b"cookie", b"a=1"), (b"cookie", b"sid=S"))
    await tctx.cycle(addon, poll)
    await addon.verifier.drain()
    assert origin.cookie_lines == [["a=1; sid=S"]]


async def test_polling_abandoned_at_capture_end_carries_the_last_origin_answer(watch, origin, tmp_path):
    addon, tctx = watch
    status_url = await create(tctx, addon, origin, "cached-status")
    await tctx.cycle(addon, exchange("GET", status_url))  # queued, max-age=30: checked at once
    await addon.verifier.drain()
    addon.done()  # the capture ends well before the abandonment threshold
    [finding] = stored(tmp_path / "pw.sqlite", "select * from findings where code = 'polling-abandoned'")
    evidence = json.loads(finding["evidence"])
    assert evidence["capture_ended"] is True and evidence["origin_check"]["origin_state"] == "queued"
    assert "pollwatch's origin check: the origin still said queued" in finding["message"]
