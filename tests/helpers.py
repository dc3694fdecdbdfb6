"""Helpers the test modules share: timelines of exchanges for the rules (fed to the pure core, or
as mitmproxy test flows through the addon), readers of a live proxy's database and output, and
recordings through a real mitmdump."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow

from pollwatch.core.observation import Observation
from pollwatch.core.tracking import Tracker
from pollwatch.demo.api import Timing
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.errors import ProxyError
from pollwatch.mitm import mitmdump
from pollwatch.mitm.addon import PollWatch
from pollwatch.sources.analysis import analyze_recordings

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
API = "http://api.test:8080"
LIVE_TIMING = Timing(queued_s=0.3, running_s=0.9)
"""How long sample-API jobs stay queued and running in end-to-end tests."""


class Traffic:
    """Builds exchanges on a simple clock so rule tests read like timelines; each goes straight
    to the core as an Observation."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.now = 1_795_881_600.0  # 2026-11-28
        self._ids = itertools.count(1)

    def exchange(self, method: str, url: str, status: int | None, *, body: Any = b"",
                 headers: dict[str, str] | None = None, request_headers: dict[str, str] | None = None,
                 took: float = 0.05, at: float | None = None, client: str | None = None):
        start = self.now if at is None else at
        if isinstance(body, dict):
            body = json.dumps(body)
        if at is None:
            self.now = start + took + 1.0
        return self.send(method, url if url.startswith("http") else API + url, status,
                         body.encode() if isinstance(body, str) else body, headers or {}, request_headers or {},
                         start, start + took, client)

    def send(self, method, url, status, body, headers, request_headers, start, end, client):
        obs = Observation.make(flow_id=f"f{next(self._ids)}", method=method, url=url, status=status,
                               response_headers=headers, request_headers=request_headers, body=body,
                               request_ts=start, response_ts=end, client=client)
        return self.tracker.observe(obs)

    def create(self, location: str = "/api/exports/e-1", *, status: int = 202, body: Any = None,
               headers: dict[str, str] | None = None, **kw):
        hdrs = {"Location": location} if location else {}
        hdrs |= headers or {}
        return self.exchange("POST", "/api/exports", status, body=body if body is not None else {"id": "e-1", "status": "queued"},
                             headers=hdrs, **kw)

    def poll(self, state: str | None = "running", url: str = "/api/exports/e-1", *, status: int = 200,
             cache: str | None = "no-store", headers: dict[str, str] | None = None, **kw):
        hdrs = {"Cache-Control": cache} if cache else {}
        hdrs |= headers or {}
        body = kw.pop("body", {"id": "e-1", "status": state} if state is not None else b"")
        return self.exchange("GET", url, status, body=body, headers=hdrs, **kw)


class AddonTraffic(Traffic):
    """The same timelines as mitmproxy test flows (tflow) through the PollWatch addon's response
    hook under taddons: adapter, core and addon together. The core's answer is captured as the
    addon receives it."""

    def __init__(self, addon: PollWatch) -> None:
        super().__init__(addon.tracker)
        self.addon = addon
        self.flows: list[http.HTTPFlow] = []

    def send(self, method, url, status, body, headers, request_headers, start, end, client):
        request = http.Request.make(method, url, b"", request_headers)
        if status is None:
            flow = tflow.tflow(req=request, err=True)
        else:
            flow = tflow.tflow(req=request, resp=http.Response.make(status, body, headers))
            flow.response.timestamp_start, flow.response.timestamp_end = end, end
        flow.request.timestamp_start = start
        flow.client_conn.peername = (client or "127.0.0.1", 50000)
        answers = []
        observe = self.addon.tracker.observe
        self.addon.tracker.observe = lambda obs: answers.append(observe(obs)) or answers[-1]
        try:
            self.addon.response(flow)
        finally:
            del self.addon.tracker.observe
        self.flows.append(flow)
        assert self.addon.internal_errors == 0
        return answers[0] if answers else None


def codes(update) -> list[str]:
    return [f.code for f in update.findings] if update is not None else []


def live_job_rows(db, job_id: str, ready: Callable[[dict[str, Any]], bool], timeout: float = 8.0) -> dict[str, Any]:
    """A job's rows in a live proxy's database (`job`, finding `codes`, `polls` in order), re-read
    until `ready` says so (the writer flushes about every 0.5 s) or the timeout passes; then the
    last read is returned for the test's asserts to explain."""
    deadline = time.monotonic() + timeout
    while True:
        rows: dict[str, Any] = {"job": None, "findings": [], "polls": []}
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            job = conn.execute("select * from jobs where job_id = ?", (job_id,)).fetchone()
            if job is not None:
                rows["job"] = dict(job)
                rows["findings"] = [r["code"] for r in
                                    conn.execute("select code from findings where job_key = ?", (job["key"],))]
                rows["polls"] = [dict(r) for r in conn.execute(
                    "select kind, method, status, state from polls where job_key = ? order by id", (job["key"],))]
        if (rows["job"] is not None and ready(rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def wait_for(proxy: ProxyProcess, text: str, timeout: float = 10.0) -> bool:
    """Wait until a line mitmdump printed contains `text` (live warnings arrive asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in proxy.lines):
            return True
        time.sleep(0.05)
    return False


def read_through_mitmdump(flows: str | Path, db: str | Path, options: Sequence[str] = (), timeout: float = 120) -> str:
    """Feed a recorded flow file through the addon (`mitmdump -nr FILE -s pollwatch`); returns
    mitmdump's output. The database gets one session with the recording's jobs and findings."""
    args = [*mitmdump.executable(), *mitmdump.read_args(flows, db=db), *mitmdump.sets(options)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=os.environ | {"PYTHONUNBUFFERED": "1"})
    if done.returncode != 0:
        raise ProxyError(f"mitmdump -nr {flows} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def build_database(path: Path, scenarios: Sequence[str]) -> Path:
    """Each recording analysed as its own session, labelled with the scenario's name."""
    for name in scenarios:
        analyze_recordings([RECORDINGS / f"{name}.flows"], path, label=name)
    return path


# --- the sample export page in a real headless Chromium ---------------------------------------------

PAGE_MAX_POLLS = 15          # the sample page gives up after this many polls (?max_polls=), 200 ms apart
PAGE_TIMEOUT_MS = 30_000
CHROMIUM = shutil.which("chromium")
"""The browser the end-to-end tests drive (scripts/test installs it)."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-gpu", "--disable-quic", "--disable-sync"]


def launch_chromium(playwright, executable: str, proxy_url: str):
    """Headless Chromium whose every request (loopback included) goes through the proxy:
    "<-loopback>" undoes Chromium's implicit proxy bypass for 127.0.0.1."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                                      proxy={"server": proxy_url, "bypass": "<-loopback>"})


def run_export_page(browser, api, fault: str, artifacts: Path, name: str | None = None) -> dict[str, Any]:
    """Open the sample export page in a fresh context (empty cache), wait until its polling stops,
    keep a screenshot; what the page showed."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{api.url}/?fault={fault}&max_polls={PAGE_MAX_POLLS}")
        page.wait_for_selector('body[data-done="true"]', state="attached", timeout=PAGE_TIMEOUT_MS)
        shown = {key: page.text_content(f"#{key}") for key in ("job", "state", "polls")}
        page.screenshot(path=str(artifacts / f"browser-{name or fault}.png"), full_page=True)
    finally:
        context.close()
    assert shown["job"] and shown["job"].startswith("/api/exports/"), shown
    return {"job_id": shown["job"].rsplit("/", 1)[-1], "status_path": shown["job"], "state": shown["state"],
            "polls": int(shown["polls"] or 0)}


def database_with_worker_log(directory: Path, recording: str, job_id: str,
                             events: Sequence[tuple[float, dict[str, Any]]]) -> Path:
    """A database built by the real commands: `analyze` of a recording, then `worker-log` of a
    JSON-lines file naming `job_id`, each event `offset` seconds after the job's creation."""
    from click.testing import CliRunner

    from pollwatch.cli.app import main

    db, log = directory / f"{recording}.sqlite", directory / "worker.jsonl"
    result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / f"{recording}.flows"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    try:
        [created] = conn.execute("select created_at from jobs where job_id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    log.write_text("".join(json.dumps({"ts": created + offset, "job_id": job_id} | fields) + "\n"
                           for offset, fields in events), encoding="utf-8")
    result = CliRunner().invoke(main, ["worker-log", str(log), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def raw_request(proxy: ProxyProcess, method: str, url: str, timeout: float = 60) -> int:
    """One request through the proxy with http.client (raw bytes: nothing decompressed); its status."""
    connection = HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        connection.request(method, url, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()



class QuietHandler(BaseHTTPRequestHandler):
    """Handler base of the tests' small loopback origins: HTTP/1.1, no access log, one call to answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
