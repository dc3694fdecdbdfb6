"""An embedded sample job API with real, deterministic faults.

The server speaks four common asynchronous-API *contracts* (URL families) and can
misbehave per job in the ways pollwatch is meant to notice: cacheable status
responses, ETags that never change, lagging replicas, reordered responses, jobs that
expire or vanish, flaky 5xx.  A job chooses its fault with ``?fault=NAME`` on the
create request, so one server can host healthy and faulty jobs side by side.

Jobs move by wall-clock time since creation (``time.monotonic``): ``queued`` for
``Timing.queued_s``, then ``running`` for ``Timing.running_s``, then terminal.
Nothing is random; every fault is driven by per-job read counters and time offsets.

Only the standard library is used (``http.server``), always over HTTP/1.1 with
``Content-Length`` so keep-alive and browser ETag revalidation behave like production.
"""

from __future__ import annotations

import dataclasses
import email.utils
import itertools
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.message import Message
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Any, Callable, Mapping, Protocol, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "CONTRACTS",
    "FAULTS",
    "BackgroundServer",
    "Contract",
    "Job",
    "JobOptions",
    "Phase",
    "Reply",
    "Request",
    "SampleAPI",
    "Timing",
]

log = logging.getLogger(__name__)

FAULTS: tuple[str, ...] = (
    "healthy",
    "cached-status",
    "cached-heuristic",
    "shared-cache",
    "etag-stuck",
    "replica-lag",
    "slow-then-fast",
    "expired",
    "missing",
    "failed",
    "flaky-5xx",
    "too-fast",
)
"""Server fault modes a job can be created with (``?fault=NAME``)."""

STUCK_ETAG = '"v1"'
"""The one ETag an ``etag-stuck`` job ever sends, whatever its state."""


# --------------------------------------------------------------------------- jobs


class Phase(Enum):
    """Contract-neutral lifecycle of a job; each contract renders its own words."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class Timing:
    """How long a job spends in each state; tests shrink it to stay fast."""

    queued_s: float = 0.3
    running_s: float = 0.9


@dataclass(frozen=True)
class JobOptions:
    """Per-job knobs read from the create request's query string."""

    fault: str = "healthy"
    ttl: int = 2
    """``shared-cache``: s-maxage in seconds."""
    lag: float = 0.6
    """``replica-lag``: how many seconds behind the replica is."""
    delay: float = 0.8
    """``slow-then-fast``: how long the 2nd status response is held back."""
    end: int = 303
    """``monitor`` contract: finish with a 303 redirect (default) or a 200 report."""

    @classmethod
    def from_query(cls, query: Mapping[str, list[str]]) -> JobOptions:
        """Parse ``fault``, ``ttl``, ``lag``, ``delay`` and ``end``; ValueError if invalid."""

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        fault = first("fault") or cls.fault
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        options = cls(fault=fault)
        if (ttl := first("ttl")) is not None:
            options = dataclasses.replace(options, ttl=int(ttl))
        if (lag := first("lag")) is not None:
            options = dataclasses.replace(options, lag=float(lag))
        if (delay := first("delay")) is not None:
            options = dataclasses.replace(options, delay=float(delay))
        if (end := first("end")) is not None:
            if end not in ("200", "303"):
                raise ValueError("end must be 200 or 303")
            options = dataclasses.replace(options, end=int(end))
        return options


@dataclass
class Job:
    """One asynchronous job; mutable only through SampleAPI under its lock."""

    id: str
    contract: Contract
    options: JobOptions
    timing: Timing
    created: float
    """time.monotonic() at creation; drives the state machine."""
    created_wall: float
    """time.time() at creation; only used for Last-Modified."""
    started: float | None
    """Monotonic time the job leaves ``queued``; None while it waits for a trigger."""
    reads: int = 0
    """Status GETs answered so far (drives alternating/every-2nd faults)."""

    def phase(self, at: float) -> Phase:
        """State of the job as it was at monotonic time ``at``."""
        if self.started is None or at < self.started:
            return Phase.QUEUED
        if at < self.started + self.timing.running_s:
            return Phase.RUNNING
        return Phase.FAILED if self.options.fault == "failed" else Phase.SUCCEEDED


# ------------------------------------------------------------------ HTTP plumbing


@dataclass(frozen=True)
class Request:
    """What a handler hands to an application: enough to route and answer."""

    method: str
    target: str
    headers: Message
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; ``delay`` holds it back before sending (slow-then-fast)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[str, str]) -> Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, (("Content-Type", "application/json"), *headers))

    @classmethod
    def empty(cls, status: int, *headers: tuple[str, str]) -> Reply:
        return cls(status, b"", headers)

    def with_headers(self, *headers: tuple[str, str]) -> Reply:
        return dataclasses.replace(self, headers=(*self.headers, *headers))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


NO_STORE = ("Cache-Control", "no-store")


def api_error(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    """JSON error body ``{"error": message}``, never cacheable."""
    return Reply.json(status, {"error": message}, NO_STORE, *headers)


def not_found() -> Reply:
    return api_error(404, "not found")


class Application(Protocol):
    """Anything a BackgroundServer can serve."""

    def handle(self, request: Request) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    """Translates http.server calls into Request -> Reply, quietly and over HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    server_version = "pollwatch-demo/1"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Stay silent: the demo and the tests own stderr."""

    def setup(self) -> None:
        super().setup()
        self._server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server().untrack(self.connection)

    def _server(self) -> _QuietServer:
        return cast(_QuietServer, self.server)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, self.headers, body)
        try:
            reply = self._server().app.handle(request)
        except Exception:  # a bug in the demo must not hang the client
            log.exception("demo server failed on %s %s", self.command, self.path)
            reply = api_error(500, "internal error")
        if reply.delay > 0:
            time.sleep(reply.delay)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        names = {name.lower() for name, _ in reply.headers}
        self.send_response_only(reply.status)
        if "server" not in names:
            self.send_header("Server", self.version_string())
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        has_body = reply.status >= 200 and reply.status not in (204, 304)
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if has_body and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class _QuietServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its application and can drop open connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up keep-alive connections so stop() really stops serving."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log at debug level instead of printing tracebacks to stderr."""
        log.debug("connection from %s failed", client_address, exc_info=True)


class BackgroundServer:
    """Serves an Application from a daemon thread; start()/stop() or use as a context manager."""

    def __init__(self, app: Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._address = (host, port)
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL like ``http://127.0.0.1:PORT`` (only once started)."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = _QuietServer(self._address, self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------- contracts


class Contract:
    """One URL family: how a job is created, polled and finished in that API style."""

    name: str
    id_prefix: str
    create_path: str
    status_route: re.Pattern[str]
    result_route: re.Pattern[str] | None = None

    def accepted(self, job: Job, origin: str) -> Reply:
        """The 202 answer to the create request."""
        raise NotImplementedError

    def status(self, job: Job, phase: Phase) -> Reply:
        """The answer to a status poll, without caching headers (faults add those)."""
        raise NotImplementedError

    def result(self, job: Job, phase: Phase) -> Reply:
        """The finished resource, if this contract has a separate one."""
        return not_found()


class ExportContract(Contract):
    """Plain REST: 202 + relative Location, then ``{"status": ...}`` and a download link."""

    name = "export"
    id_prefix = "e"
    create_path = "/api/exports"
    status_route = re.compile(r"^/api/exports/(?P<id>[^/]+)$")
    result_route = re.compile(r"^/api/exports/(?P<id>[^/]+)/download$")

    def accepted(self, job: Job, origin: str) -> Reply:
        return Reply.json(
            202, {"id": job.id, "status": "queued"}, ("Location", f"/api/exports/{job.id}"), NO_STORE
        )

    def status(self, job: Job, phase: Phase) -> Reply:
        body: dict[str, Any] = {"id": job.id, "status": phase.value}
        if phase is Phase.SUCCEEDED:
            body["result"] = f"/api/exports/{job.id}/download"
        if phase is Phase.FAILED:
            body["error"] = {"message": "export worker crashed"}
        return Reply.json(200, body)

    def result(self, job: Job, phase: Phase) -> Reply:
        if phase is not Phase.SUCCEEDED:
            return api_error(409, "export not ready")
        csv = f"id,row\n{job.id},1\n{job.id},2\n{job.id},3\n".encode()
        return Reply(200, csv, (("Content-Type", "text/csv; charset=utf-8"), NO_STORE))


class AzureContract(Contract):
    """Azure style: empty 202 + absolute Operation-Location with api-version; PascalCase words."""

    name = "azure"
    id_prefix = "op"
    create_path = "/api/translations"
    status_route = re.compile(r"^/api/operations/(?P<id>[^/]+)$")
    api_version = "2024-05-01"
    words = MappingProxyType(
        {
            Phase.QUEUED: "NotStarted",
            Phase.RUNNING: "Running",
            Phase.SUCCEEDED: "Succeeded",
            Phase.FAILED: "Failed",
        }
    )

    def accepted(self, job: Job, origin: str) -> Reply:
        location = f"{origin}/api/operations/{job.id}?api-version={self.api_version}"
        return Reply.empty(202, ("Operation-Location", location), NO_STORE)

    def status(self, job: Job, phase: Phase) -> Reply:
        body: dict[str, Any] = {"id": job.id, "status": self.words[phase]}
        if phase is Phase.FAILED:
            body["error"] = {"code": "InternalServerError", "message": "translation worker crashed"}
        return Reply.json(200, body)


class MonitorContract(Contract):
    """Status-monitor style: 202 + Retry-After while pending, then 303 to the report (or 200)."""

    name = "monitor"
    id_prefix = "r"
    create_path = "/api/reports"
    status_route = re.compile(r"^/api/reports/status/(?P<id>[^/]+)$")
    result_route = re.compile(r"^/api/reports/(?P<id>[^/]+)$")

    def accepted(self, job: Job, origin: str) -> Reply:
        return Reply.json(
            202, {"reportId": job.id}, ("Location", f"/api/reports/status/{job.id}"), NO_STORE
        )

    def status(self, job: Job, phase: Phase) -> Reply:
        if phase is Phase.FAILED:
            return Reply.json(200, {"status": "failed", "error": {"message": "report failed"}})
        if not phase.terminal:
            return Reply.empty(202, ("Retry-After", "1"))
        if job.options.end == 200:
            return Reply.json(200, self._report(job))
        return Reply.empty(303, ("Location", f"/api/reports/{job.id}"))

    def result(self, job: Job, phase: Phase) -> Reply:
        if phase is not Phase.SUCCEEDED:
            return api_error(409, "report not ready")
        return Reply.json(200, self._report(job), NO_STORE)

    @staticmethod
    def _report(job: Job) -> dict[str, Any]:
        return {"reportId": job.id, "rows": 3, "total": 42}


class GoogleContract(Contract):
    """Google long-running-operation style: ``{"name", "done"}``, no Location header."""

    name = "google"
    id_prefix = "g"
    create_path = "/v1/operations"
    status_route = re.compile(r"^/v1/operations/(?P<id>[^/]+)$")

    def accepted(self, job: Job, origin: str) -> Reply:
        return Reply.json(202, {"name": f"operations/{job.id}", "done": False}, NO_STORE)

    def status(self, job: Job, phase: Phase) -> Reply:
        body: dict[str, Any] = {"name": f"operations/{job.id}", "done": phase.terminal}
        if phase is Phase.SUCCEEDED:
            body["response"] = {"@type": "type.googleapis.com/pollwatch.demo.ExportResult", "rows": 3}
        if phase is Phase.FAILED:
            body["error"] = {"code": 13, "message": "internal error while exporting"}
        return Reply.json(200, body)


CONTRACTS: Mapping[str, Contract] = MappingProxyType(
    {c.name: c for c in (ExportContract(), AzureContract(), MonitorContract(), GoogleContract())}
)
"""Every contract by name: export, azure, monitor, google."""


# -------------------------------------------------------------------- application


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


class _JobAPI:
    """Routing, job store and fault logic of SampleAPI (no sockets here)."""

    def __init__(self, name: str, timing: Timing, clock: Callable[[], float]) -> None:
        self.name = name
        self.timing = timing
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._job_ids = itertools.count(1001)
        self._request_ids = itertools.count(1)
        self.fallback_host = "127.0.0.1"

    def handle(self, request: Request) -> Reply:
        with self._lock:
            request_id = next(self._request_ids)
        return self._route(request).with_headers(("X-Request-Id", str(request_id)))

    def _route(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if path in ("/", "/ui/export"):
            return self._page() if method in ("GET", "HEAD") else api_error(405, "method not allowed")
        for contract in CONTRACTS.values():
            if path == contract.create_path:
                if method != "POST":
                    return api_error(405, "method not allowed")
                return self._create(contract, request)
            for route, answer in (
                (contract.status_route, self._status),
                (contract.result_route, self._result),
            ):
                match = route.match(path) if route is not None else None
                if match is None:
                    continue
                if method not in ("GET", "HEAD"):
                    return api_error(405, "method not allowed")
                job = self._find(contract, match["id"])
                return not_found() if job is None else answer(job, request)
        return not_found()

    def _find(self, contract: Contract, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.contract is contract else None

    def _create(self, contract: Contract, request: Request) -> Reply:
        try:
            options = JobOptions.from_query(request.query)
        except ValueError as error:
            return Reply.json(400, {"error": str(error), "faults": list(FAULTS)}, NO_STORE)
        now = self._clock()
        with self._lock:
            job_id = f"{contract.id_prefix}-{next(self._job_ids)}"
            # slow-then-fast: the job stays queued until its 2nd status GET arrives,
            # so the held-back answer is reliably older than the ones overtaking it.
            started = None if options.fault == "slow-then-fast" else now + self.timing.queued_s
            job = Job(job_id, contract, options, self.timing, now, time.time(), started)
            self._jobs[job_id] = job
        origin = f"http://{request.headers.get('Host') or self.fallback_host}"
        return contract.accepted(job, origin)

    def _result(self, job: Job, request: Request) -> Reply:
        return job.contract.result(job, job.phase(self._clock()))

    def _status(self, job: Job, request: Request) -> Reply:
        """Answer a poll, applying the job's fault."""
        fault, options = job.options.fault, job.options
        served_by: str | None = None
        delay = 0.0
        with self._lock:
            read = job.reads
            job.reads += 1
            now = self._clock()
            at = now
            if fault == "replica-lag":
                served_by = "replica" if read % 2 else "primary"
                at = now - options.lag if read % 2 else now
            phase = job.phase(at)
            if fault == "slow-then-fast" and read == 1:
                job.started = now
                delay = options.delay
        if fault == "missing" and read >= 1:
            return not_found()
        if fault == "flaky-5xx" and read % 2 == 1:
            return api_error(503, "service unavailable", ("Retry-After", "1"))
        if fault == "expired" and phase.terminal:
            return api_error(410, "expired")
        reply = job.contract.status(job, phase).with_headers(*self._freshness(job))
        if served_by is not None:
            reply = reply.with_headers(("X-Served-By", served_by))
        if fault == "too-fast" and reply.header("Retry-After") is None:
            reply = reply.with_headers(("Retry-After", "1"))
        if fault == "etag-stuck" and _etag_matches(request.headers.get("If-None-Match"), STUCK_ETAG):
            reply = Reply.empty(304, ("ETag", STUCK_ETAG), ("Cache-Control", "no-cache"))
        return dataclasses.replace(reply, delay=delay)

    @staticmethod
    def _freshness(job: Job) -> tuple[tuple[str, str], ...]:
        """Caching headers of a status response: no-store unless the fault says otherwise."""
        match job.options.fault:
            case "cached-status":
                return (("Cache-Control", "max-age=30"),)
            case "cached-heuristic":
                # No Cache-Control: a cache may use 10% of (Date - Last-Modified) ~ 6 s.
                return (("Last-Modified", email.utils.formatdate(job.created_wall - 60, usegmt=True)),)
            case "shared-cache":
                return (("Cache-Control", f"public, s-maxage={job.options.ttl}, max-age=0"),)
            case "etag-stuck":
                return (("Cache-Control", "no-cache"), ("ETag", STUCK_ETAG))
            case _:
                return (NO_STORE,)

    def _page(self) -> Reply:
        return Reply(200, _EXPORT_PAGE.encode(), (("Content-Type", "text/html; charset=utf-8"), NO_STORE))


class SampleAPI(BackgroundServer):
    """The sample job API on 127.0.0.1, served from a daemon thread.

    ``name`` ("prod", "staging", ...) only labels the instance; ``timing`` sets how
    long jobs stay queued and running.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "prod",
        timing: Timing = Timing(),
    ) -> None:
        self._api = _JobAPI(name, timing, time.monotonic)
        self._api.fallback_host = f"{host}:{port}"
        super().__init__(self._api, host, port)

    @property
    def name(self) -> str:
        return self._api.name

    @property
    def timing(self) -> Timing:
        return self._api.timing

    def start(self) -> Self:
        super().start()
        self._api.fallback_host = self.url.removeprefix("http://")
        return self


_EXPORT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pollwatch sample export</title>
</head>
<body>
<h1>Export</h1>
<p>Job <code id="job">-</code>: state <span id="state">starting</span>,
polls <span id="polls">0</span></p>
<script>
// Like a typical UI: create the job, then fetch() the status URL every 200 ms with the
// default cache mode until a terminal state (or 40 polls). body[data-done] marks the end.
// ?max_polls= and ?every= (ms) change the defaults; other parameters go to the create call.
(async () => {
  const page = new URLSearchParams(location.search);
  const fault = page.get('fault') || 'healthy';
  const maxPolls = Number(page.get('max_polls') || 40);
  const every = Number(page.get('every') || 200);
  for (const name of ['fault', 'max_polls', 'every']) page.delete(name);
  const extra = page.toString() ? '&' + page.toString() : '';
  const show = (id, text) => { document.getElementById(id).textContent = String(text); };
  const finish = () => { document.body.dataset.done = 'true'; };
  const created = await fetch('/api/exports?fault=' + encodeURIComponent(fault) + extra, {method: 'POST'});
  if (created.status !== 202) { show('state', 'error-' + created.status); finish(); return; }
  const statusUrl = new URL(created.headers.get('Location'), location.href);
  show('job', statusUrl.pathname);
  let polls = 0;
  while (polls < maxPolls) {
    const response = await fetch(statusUrl);
    polls += 1;
    show('polls', polls);
    if (response.status >= 400 && response.status < 500) {
      show('state', 'error-' + response.status);
      break;
    }
    if (response.ok) {
      const body = await response.json();
      show('state', body.status);
      if (body.status === 'succeeded' || body.status === 'failed') break;
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  finish();
})();
</script>
</body>
</html>
"""
