"""The live job view inside the proxy: the addon's hooks under mitmproxy's test helpers (served on
its host only, off when switched off, its flows never watched, the watcher's news on the board),
then a real mitmdump (the view's requests never reach upstream nor the database) and `pollwatch
run` announcing where the view is."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import httpx
import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from pollwatch.demo.api import SampleAPI
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.live.addon import DEFAULT_HOST, LiveView
from pollwatch.mitm.addon import UNWATCHED, PollWatch

CLI = [sys.executable, "-c", "from pollwatch.cli.app import main; main()"]


@pytest.fixture
def served():
    """The watcher and the view, in the order the script loads them, without a database."""
    watch = PollWatch()
    view = LiveView(watch)
    with taddons.context(watch, view) as tctx:
        tctx.configure(watch, pollwatch_db="")
        yield watch, view, tctx


def request_to(url: str, method: str = "GET") -> http.HTTPFlow:
    return tflow.tflow(req=http.Request.make(method, url))


def exchange(method: str, url: str, status: int, body: dict, headers: dict[str, str]) -> http.HTTPFlow:
    return tflow.tflow(req=http.Request.make(method, url),
                       resp=http.Response.make(status, json.dumps(body).encode(),
                                               {"Content-Type": "application/json", **headers}))


async def answered(view: LiveView, flow: http.HTTPFlow) -> None:
    """The view's request hook as mitmproxy calls it: what it returns, if anything, is awaited."""
    pending = view.request(flow)
    if pending is not None:
        await pending


def creation() -> http.HTTPFlow:
    return exchange("POST", "http://api.test/api/exports", 202, {"id": "e-1", "status": "queued"},
                    {"Location": "/api/exports/e-1"})


async def test_a_request_to_the_view_host_is_answered_by_pollwatch_itself(served):
    watch, view, tctx = served
    f = request_to(f"http://{DEFAULT_HOST}/api/jobs?limit=5")
    await answered(view, f)
    assert f.response.status_code == 200 and f.response.headers["cache-control"] == "no-store"
    assert f.response.json()["session_id"] == watch.session.id and f.metadata[UNWATCHED] is True


async def test_a_flow_pollwatch_answers_itself_is_never_job_traffic(served):
    watch, view, tctx = served
    unwatched = creation()
    watch.unwatch(unwatched)
    watch.response(unwatched)
    assert not watch.tracker.jobs
    watch.response(creation())  # the same exchange from a client is a job
    assert [j.job_id for j in watch.tracker.jobs.values()] == ["e-1"]


async def test_the_view_is_off_when_pollwatch_ui_is_false(served):
    watch, view, tctx = served
    tctx.configure(view, pollwatch_ui=False)
    f = request_to(f"http://{DEFAULT_HOST}/")
    await answered(view, f)
    assert f.response is None and UNWATCHED not in f.metadata


async def test_the_view_answers_on_the_host_pollwatch_ui_host_names_only(served):
    watch, view, tctx = served
    tctx.configure(view, pollwatch_ui_host="Jobs.Internal")
    there, default = request_to("http://jobs.internal:8000/"), request_to(f"http://{DEFAULT_HOST}/")
    await answered(view, there)
    await answered(view, default)
    assert there.response.status_code == 200 and "text/html" in there.response.headers["content-type"]
    assert default.response is None


async def test_a_request_naming_the_view_in_its_url_or_its_host_header_is_never_sent_upstream(served):
    """`pollwatch.localhost` may resolve to this machine: a request naming the view by URL but not
    by Host header, or with the root's trailing dot, is the view's all the same."""
    watch, view, tctx = served
    by_url = request_to(f"http://{DEFAULT_HOST}/api/jobs")
    by_url.request.headers["Host"] = "api.test"
    rooted = request_to(f"http://{DEFAULT_HOST}./api/jobs")
    for f in (by_url, rooted):
        await answered(view, f)
        assert f.response.status_code == 200 and f.metadata[UNWATCHED] is True


def test_a_view_host_that_is_no_host_name_is_refused(served):
    watch, view, tctx = served
    with pytest.raises(exceptions.OptionsError, match="pollwatch_ui_host"):
        tctx.configure(view, pollwatch_ui_host="pollwatch.localhost/jobs")


async def test_the_view_shows_what_the_watcher_just_learnt(served):
    watch, view, tctx = served
    for f in (creation(), exchange("GET", "http://api.test/api/exports/e-1", 200, {"id": "e-1", "status": "running"},
                                   {"Cache-Control": "max-age=30"})):
        watch.response(f)
    listing = request_to(f"http://{DEFAULT_HOST}/api/jobs")
    await answered(view, listing)
    [job] = listing.response.json()["jobs"]
    assert (job["job_id"], job["last_state"], job["polls"], job["codes"]) == ("e-1", "running", 1, ["status-cacheable"])


# --- a real mitmdump ----------------------------------------------------------------------------

def test_the_view_s_requests_never_reach_upstream_nor_the_database(tmp_path):
    """With the view on the sample API's own host, a job creation sent there is answered by the
    view (it only reads: 405); the API never sees it and no job is recorded. With the view off,
    the same request creates the job."""
    with SampleAPI() as api:
        for ui, db in (("true", tmp_path / "on.sqlite"), ("false", tmp_path / "off.sqlite")):
            with ProxyProcess(db, options=["pollwatch_ui_host=127.0.0.1", f"pollwatch_ui={ui}"]) as proxy:
                with httpx.Client(proxy=proxy.url, trust_env=False, timeout=10) as client:
                    created = client.post(f"{api.url}/api/exports")
                    listing = client.get(f"{api.url}/api/jobs")
            if ui == "true":
                assert created.status_code == 405 and listing.headers["cache-control"] == "no-store"
                assert listing.json()["total"] == 0
            else:
                assert created.status_code == 202 and listing.status_code == 404
            assert httpx.get(f"{api.url}/api/exports/e-1001", trust_env=False).status_code == (404 if ui == "true" else 200)
            counts = subprocess.run([*CLI, "jobs", "--db", str(db), "--format", "json"], capture_output=True, text=True)
            assert len(json.loads(counts.stdout)) == (0 if ui == "true" else 1), counts.stdout


def test_pollwatch_run_prints_the_url_of_the_view_at_start_up(tmp_path):
    process = subprocess.Popen([*CLI, "run", "--port", "0", "--db", str(tmp_path / "run.sqlite")], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=os.environ | {"PYTHONUNBUFFERED": "1"})
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    seen = []
    try:
        while not any("live job view" in line for line in seen):
            seen.append(lines.get(timeout=30))
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert f"live job view: http://{DEFAULT_HOST}/ (open it in a browser that uses this proxy: 127.0.0.1:" in seen[-1]
