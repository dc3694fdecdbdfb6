"""The fix switch (`--set pollwatch_fix=no-store`): status responses of tracked jobs reach the client
uncacheable, polls lose their conditional headers, findings still describe the original responses.
Hooks under mitmproxy's test helpers, then a real headless Chromium through a real mitmdump."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from helpers import live_job_rows, run_export_page
from pollwatch.cli.app import main
from pollwatch.mitm.addon import PollWatch
from pollwatch.mitm.fix import FixSwitch


@pytest.fixture
def switched():
    """PollWatch and the fix switch, in the order the script loads them, with the fix on."""
    watch = PollWatch()
    fix = FixSwitch(watch)
    with taddons.context(watch, fix) as tctx:
        tctx.configure(watch, pollwatch_db="", pollwatch_fix="no-store")
        yield watch, fix, tctx


def flow(method: str, url: str, status: int, body: dict, headers: dict[str, str],
         request_headers: dict[str, str] | None = None) -> http.HTTPFlow:
    request = http.Request.make(method, url, b"", request_headers or {})
    return tflow.tflow(req=request, resp=http.Response.make(status, json.dumps(body).encode(),
                                                             {"Content-Type": "application/json", **headers}))


def create() -> http.HTTPFlow:
    return flow("POST", "http://api.test/api/exports", 202, {"id": "e-1", "status": "queued"},
                {"Location": "/api/exports/e-1"})


async def cycle(tctx, watch, fix, f: http.HTTPFlow) -> http.HTTPFlow:
    """The hooks in the order mitmproxy calls them for one flow and these two addons."""
    fix.request(f)
    watch.response(f)
    fix.response(f)
    return f


CACHEABLE = {"Cache-Control": "public, max-age=60", "ETag": '"v1"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT",
             "Expires": "Tue, 01 Dec 2026 10:01:00 GMT"}


async def test_a_cacheable_status_response_reaches_the_client_uncacheable(switched):
    watch, fix, tctx = switched
    await cycle(tctx, watch, fix, create())
    poll = await cycle(tctx, watch, fix, flow("GET", "http://api.test/api/exports/e-1", 200,
                                              {"id": "e-1", "status": "running"}, CACHEABLE))
    headers = poll.response.headers
    assert headers["cache-control"] == "no-store"
    assert not {"etag", "last-modified", "expires"} & {k.lower() for k in headers}
    assert "modified by pollwatch_fix" in poll.comment


async def test_findings_are_still_computed_on_the_original_response(switched):
    watch, fix, tctx = switched
    await cycle(tctx, watch, fix, create())
    poll = await cycle(tctx, watch, fix, flow("GET", "http://api.test/api/exports/e-1", 200,
                                              {"id": "e-1", "status": "running"}, CACHEABLE))
    job = next(iter(watch.tracker.jobs.values()))
    assert any(f.code == "status-cacheable" for f in job.counts.values())
    assert "status-cacheable" in poll.comment


async def test_polls_of_tracked_jobs_lose_their_conditional_headers(switched):
    watch, fix, tctx = switched
    await cycle(tctx, watch, fix, create())
    poll = flow("GET", "http://api.test/api/exports/e-1", 200, {"id": "e-1", "status": "running"}, {},
                {"If-None-Match": '"v1"', "If-Modified-Since": "Tue, 01 Dec 2026 10:00:00 GMT"})
    fix.request(poll)
    assert "if-none-match" not in poll.request.headers and "if-modified-since" not in poll.request.headers


async def test_other_traffic_is_left_as_it_is(switched):
    watch, fix, tctx = switched
    other = flow("GET", "http://api.test/assets/app.js", 200, {"x": 1}, CACHEABLE, {"If-None-Match": '"a"'})
    await cycle(tctx, watch, fix, other)
    assert other.response.headers["cache-control"] == "public, max-age=60" and other.response.headers["etag"] == '"v1"'
    assert other.request.headers["if-none-match"] == '"a"'


async def test_a_download_naming_a_tracked_job_keeps_its_conditional_headers(switched):
    watch, fix, tctx = switched
    await cycle(tctx, watch, fix, create())
    await cycle(tctx, watch, fix, flow("GET", "http://api.test/api/exports/e-1", 200, {"id": "e-1", "status": "running"}, {}))
    download = flow("GET", "http://api.test/api/exports/e-1/download", 200, {"rows": []}, {"ETag": '"d"'},
                    {"If-None-Match": '"d"'})
    await cycle(tctx, watch, fix, download)
    assert download.request.headers["if-none-match"] == '"d"' and download.response.headers["etag"] == '"d"'


async def test_the_fix_is_off_unless_asked_for():
    watch = PollWatch()
    fix = FixSwitch(watch)
    with taddons.context(watch, fix) as tctx:
        tctx.configure(watch, pollwatch_db="")
        await cycle(tctx, watch, fix, create())
        poll = await cycle(tctx, watch, fix, flow("GET", "http://api.test/api/exports/e-1", 200,
                                                  {"id": "e-1", "status": "running"}, CACHEABLE))
    assert poll.response.headers["cache-control"] == "public, max-age=60"


def test_the_session_records_that_the_fix_was_on(switched):
    watch, _, _ = switched
    assert watch.session.settings["fix"] == "no-store"


def test_an_unknown_fix_is_refused():
    watch = PollWatch()
    with taddons.context(watch) as tctx, pytest.raises(exceptions.OptionsError, match="pollwatch_fix"):
        tctx.configure(watch, pollwatch_db="", pollwatch_fix="max-age=0")


def test_run_passes_the_fix_to_mitmdump(monkeypatch):
    from click.testing import CliRunner

    seen: list[list[str]] = []
    monkeypatch.setattr("pollwatch.mitm.mitmdump.run_in_process", lambda args: seen.append(list(args)) or 0)
    result = CliRunner().invoke(main, ["run", "--fix", "no-store", "--db", "x.sqlite"])
    assert result.exit_code == 0 and "pollwatch_fix=no-store" in seen[0]


# --- a real browser through a real mitmdump with the fix on ---------------------------------------------

PROXY_OPTIONS = ["pollwatch_fix=no-store"]
"""The module's mitmdump (conftest's `proxy`) runs with the fix on."""


@pytest.mark.parametrize("fault, finding", [("cached-status", "status-cacheable"), ("etag-stuck", None)])
def test_with_the_fix_the_browser_reaches_succeeded(browser, proxy, api, artifacts, fault, finding):
    shown = run_export_page(browser, api, fault, artifacts, name=f"{fault}-fixed")
    assert shown["state"] == "succeeded", shown
    rows = live_job_rows(proxy.db, shown["job_id"], lambda r: r["job"]["terminal_state"] == "succeeded"
                         and (finding is None or finding in r["findings"]))
    assert rows["job"]["terminal_state"] == "succeeded", rows
    if finding is not None:  # the original responses still say what is wrong with the server
        assert finding in rows["findings"], rows
