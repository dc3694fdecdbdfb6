"""The mitmproxy addon's hooks, driven by mitmproxy's own test helpers (tflow, taddons)."""

from __future__ import annotations

import gzip

import brotli
import json
import logging
import sqlite3
import time

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from pollwatch.core.observation import Headers
from pollwatch.mitm.addon import PollWatch


def make_flow(method: str, url: str, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None,
              request_headers: dict[str, str] | None = None) -> http.HTTPFlow:
    request = http.Request.make(method, url, b"", request_headers or {})
    response = http.Response.make(status, body, headers or {})
    flow = tflow.tflow(req=request, resp=response)
    request.timestamp_start = response.timestamp_start = response.timestamp_end = time.time()
    return flow


def create_flow(job: str = "e-1") -> http.HTTPFlow:
    return make_flow("POST", "http://api.test/api/exports", 202, json.dumps({"id": job, "status": "queued"}),
                     {"Location": f"/api/exports/{job}", "Content-Type": "application/json"})


def poll_flow(state: str, cache: str = "no-store", job: str = "e-1", **kw) -> http.HTTPFlow:
    return make_flow("GET", f"http://api.test/api/exports/{job}", 200, json.dumps({"id": job, "status": state}),
                     {"Cache-Control": cache, "Content-Type": "application/json"}, **kw)


@pytest.fixture
def watch(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"))
        yield addon, tctx
        addon.done()


async def test_creating_response_is_commented_with_job_id_and_status_url(watch):
    addon, tctx = watch
    flow = create_flow()
    await tctx.cycle(addon, flow)
    assert "job e-1 -> http://api.test/api/exports/e-1" in flow.comment
    assert not flow.marked


async def test_cacheable_status_poll_is_marked_commented_and_logged(watch, caplog):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    flow = poll_flow("running", cache="max-age=30")
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        await tctx.cycle(addon, flow)
    assert flow.marked == ":warning:"
    assert "status-cacheable" in flow.comment
    assert any("status-cacheable job e-1" in r.getMessage() for r in caplog.records)


async def test_error_findings_get_the_error_mark_and_level(watch, caplog):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    await tctx.cycle(addon, poll_flow("succeeded"))
    flow = poll_flow("running")
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        await tctx.cycle(addon, flow)
    assert flow.marked == ":no_entry:"
    assert any(r.levelno == logging.ERROR and "state-regression" in r.getMessage() for r in caplog.records)


async def test_healthy_job_is_neither_marked_nor_warned(watch, caplog):
    addon, tctx = watch
    flows = [create_flow(), poll_flow("running"), poll_flow("succeeded")]
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        for flow in flows:
            await tctx.cycle(addon, flow)
    assert not any(f.marked for f in flows)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [s.value for s in addon.tracker.jobs[next(iter(addon.tracker.jobs))].states] == ["queued", "running", "succeeded"]


async def test_filter_option_limits_what_is_watched(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="", pollwatch_filter="~d other.test")
        await tctx.cycle(addon, create_flow())
        assert addon.tracker.jobs == {}


def test_invalid_filter_is_rejected_as_an_option_error():
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(addon, pollwatch_db="", pollwatch_filter="~d (")


def test_invalid_state_word_option_is_rejected():
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="not one of"):
            tctx.configure(addon, pollwatch_db="", pollwatch_states=["Baking=cooking"])


async def test_extra_state_words_from_options_are_used(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="", pollwatch_states=["Baking=running"])
        await tctx.cycle(addon, create_flow())
        await tctx.cycle(addon, poll_flow("Baking"))
        job = next(iter(addon.tracker.jobs.values()))
        assert job.last_state.value == "running"


async def test_an_internal_error_leaves_the_flow_untouched_and_is_counted(watch, monkeypatch, caplog):
    addon, tctx = watch

    def explode(obs):
        raise RuntimeError("boom")

    monkeypatch.setattr(addon.tracker, "observe", explode)
    flows = [create_flow(), poll_flow("running")]
    before = [(f.response.content, dict(f.response.headers), f.response.status_code) for f in flows]
    with caplog.at_level(logging.ERROR, logger="pollwatch"):
        for flow in flows:
            await tctx.cycle(addon, flow)
    assert [(f.response.content, dict(f.response.headers), f.response.status_code) for f in flows] == before
    assert addon.internal_errors == 2
    assert sum("internal error" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("body, headers", [
    (b'{"status": "runn', {"Content-Type": "application/json"}),                     # malformed JSON
    (bytes(range(256)) * 64, {"Content-Type": "application/octet-stream"}),           # binary
    (b'{"status": "running", "pad": "' + b"x" * 5_000_000 + b'"}', {"Content-Type": "application/json"}),  # huge
    (b'\xff\xfe{"status": "running"}', {"Content-Type": "application/json; charset=latin-1"}),  # odd encoding
])
async def test_bad_bodies_pass_unchanged_without_internal_errors(watch, body, headers):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    flow = make_flow("GET", "http://api.test/api/exports/e-1", 200, body, headers)
    raw_before = flow.response.raw_content
    await tctx.cycle(addon, flow)
    assert flow.response.raw_content == raw_before
    assert addon.internal_errors == 0


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("br", brotli.compress)])
async def test_compressed_status_is_decoded_for_reading_but_not_altered(watch, encoding, compress):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    flow = poll_flow("succeeded")
    flow.response.headers["content-encoding"] = encoding
    flow.response.raw_content = compress(b'{"id": "e-1", "status": "succeeded"}')
    raw_before = flow.response.raw_content
    await tctx.cycle(addon, flow)
    assert flow.response.raw_content == raw_before
    assert next(iter(addon.tracker.jobs.values())).terminal_state.value == "succeeded"


async def test_invalid_header_bytes_do_not_break_storage(watch, tmp_path):
    addon, tctx = watch
    flow = create_flow()
    flow.response.headers.fields = flow.response.headers.fields + ((b"x-request-id", b"\xff\xfe-id"),)
    await tctx.cycle(addon, flow)
    addon.done()
    assert addon.internal_errors == 0
    with sqlite3.connect(tmp_path / "pw.sqlite") as db:
        assert db.execute("select count(*) from polls").fetchone()[0] == 1


async def test_jobs_command_returns_one_line_per_job(watch):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    lines = tctx.command(addon.jobs)
    assert lines[0] == "1 job(s)" and lines[1].split()[:2] == ["e-1", "queued"]


async def test_job_command_says_which_job_each_flow_belongs_to(watch):
    addon, tctx = watch
    creating, unrelated = create_flow(), tflow.tflow(resp=True)
    await tctx.cycle(addon, creating)
    await tctx.cycle(addon, unrelated)
    key = next(iter(addon.tracker.jobs))
    assert addon.job([creating, unrelated]) == [f"{creating.id} e-1 (key {key})", f"{unrelated.id} -"]


def test_the_commands_are_registered_under_their_names():
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        assert {"pollwatch.jobs", "pollwatch.job"} <= set(tctx.master.commands.commands)


async def test_error_flow_without_response_is_recorded_as_a_poll_without_state(watch):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow())
    flow = tflow.tflow(req=http.Request.make("GET", "http://api.test/api/exports/e-1"), err=True)
    await tctx.cycle(addon, flow)
    job = next(iter(addon.tracker.jobs.values()))
    assert job.polls == 1 and job.last_state.value == "queued"


async def test_error_findings_in_recorded_flows_log_below_error_so_mitmdump_keeps_reading(watch, caplog):
    addon, tctx = watch
    flows = [create_flow(), poll_flow("succeeded"), poll_flow("running")]
    for flow in flows:
        flow.live = False
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        for flow in flows:
            await tctx.cycle(addon, flow)
    regression = [r for r in caplog.records if "state-regression" in r.getMessage()]
    assert regression and regression[0].levelno == logging.WARNING and "error:" in regression[0].getMessage()


async def test_ipv6_hosts_are_tracked(watch):
    addon, tctx = watch
    create = make_flow("POST", "http://[::1]:8080/api/exports", 202, json.dumps({"id": "e-6", "status": "queued"}),
                       {"Location": "/api/exports/e-6"})
    poll = make_flow("GET", "http://[::1]:8080/api/exports/e-6", 200, json.dumps({"status": "succeeded"}),
                     {"Cache-Control": "no-store"})
    for flow in (create, poll):
        await tctx.cycle(addon, flow)
    [job] = addon.tracker.jobs.values()
    assert addon.internal_errors == 0 and job.host == "http://[::1]:8080" and job.polls == 1


@pytest.mark.parametrize("location", ["http://api.test:99999/x/e-1", "http://api.test:abc/x", "http://[::1"])
async def test_an_unusable_location_is_no_reference_and_no_crash(watch, location, caplog):
    addon, tctx = watch
    flow = make_flow("POST", "http://api.test/api/exports", 202, b"", {"Location": location})
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        await tctx.cycle(addon, flow)
    assert addon.internal_errors == 0 and "accepted-without-job-reference" in flow.comment


async def test_changed_settings_keep_job_keys_unique(watch):
    addon, tctx = watch
    await tctx.cycle(addon, create_flow("e-1"))
    first = next(iter(addon.tracker.jobs))
    tctx.configure(addon, pollwatch_stuck_after=10)
    await tctx.cycle(addon, create_flow("e-2"))
    assert next(iter(addon.tracker.jobs)) != first


async def test_a_large_gzip_body_is_only_inflated_as_far_as_the_excerpt(watch):
    from pollwatch.mitm.flows import observation_from_flow
    from pollwatch.core.observation import BODY_EXCERPT_LIMIT

    flow = poll_flow("running")
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.raw_content = gzip.compress(b'{"status": "running", "pad": "' + b"x" * 50_000_000 + b'"}')
    obs = observation_from_flow(flow)
    assert len(obs.content()) == BODY_EXCERPT_LIMIT and obs.body_truncated


def test_a_request_with_two_host_headers_is_not_given_another_requests_url():
    from pollwatch.mitm.flows import observation_from_flow

    def with_hosts(*hosts: bytes) -> http.HTTPFlow:
        flow = tflow.tflow(resp=True)
        flow.request.headers = http.Headers([(b"Host", host) for host in hosts])
        return flow

    first = observation_from_flow(with_hosts(b"a.test", b"b.test")).url
    second = observation_from_flow(with_hosts(b"a.test", b"c.test")).url
    assert first != second and "c.test" in second


def test_response_headers_are_decoded_when_first_asked_as_the_response_was_when_observed():
    """A batch reads a flow after its hook (mitm/batch.py): what addons after pollwatch's change
    by then is not what the server sent."""
    from pollwatch.mitm.flows import observation_from_flow

    flow = tflow.tflow(resp=True)
    obs = observation_from_flow(flow)
    assert not isinstance(obs._response_headers, Headers)  # not decoded yet
    flow.response.headers["x-later"] = "changed after the observation was made"
    flow.response.content = b"changed too"
    assert "x-later" not in obs.response_headers and obs.content() == b"message"
    assert obs.response_headers is obs.response_headers  # decoded once, then kept
