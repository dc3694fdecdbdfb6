"""An embedded sample job API with real, deterministic faults.

The server speaks four common asynchronous-API *contracts* (URL families, contracts.py) and
can misbehave per job in the ways pollwatch is meant to notice: cacheable status responses,
ETags that never change, lagging replicas, reordered responses, jobs that expire or vanish,
flaky 5xx.  A job chooses its fault with ``?fault=NAME`` on the create request, so one server
can host healthy and faulty jobs side by side.

This module is the routing, job store and fault logic; the job model is in jobs.py, the
sockets in server.py, the browser page in page.py.  It re-exports the job vocabulary
(CONTRACTS, FAULTS, JobOptions, Phase, Timing) so callers can import the job API from one
place.  Nothing is random; every fault is driven by per-job read counters and time offsets.
"""

from __future__ import annotations

import dataclasses
import email.utils
import itertools
import threading
import time
from pathlib import Path
from typing import Callable, Self

from pollwatch.demo.contracts import CONTRACTS
from pollwatch.demo.jobs import FAULTS, Contract, JobOptions, Phase, SampleJob, Timing
from pollwatch.demo.page import EXPORT_PAGE
from pollwatch.demo.worker_log import WorkerLog
from pollwatch.demo.server import (
    NO_STORE,
    BackgroundServer,
    Reply,
    Request,
    api_error,
    not_found,
)

__all__ = [
    "CONTRACTS",
    "FAULTS",
    "STUCK_ETAG",
    "JobOptions",
    "Phase",
    "SampleAPI",
    "SampleJob",
    "Timing",
]

STUCK_ETAG = '"v1"'
"""The one ETag an ``etag-stuck`` job ever sends, whatever its state."""


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
        self._jobs: dict[str, SampleJob] = {}
        self._job_ids = itertools.count(1001)
        self._request_ids = itertools.count(1)
        self.fallback_host = "127.0.0.1"
        self.worker_log: WorkerLog | None = None

    def handle(self, request: Request) -> Reply:
        with self._lock:
            request_id = next(self._request_ids)
        return self._route(request, str(request_id)).with_headers(("X-Request-Id", str(request_id)))

    def _route(self, request: Request, request_id: str) -> Reply:
        path, method = request.path, request.method
        if path in ("/", "/ui/export"):
            return self._page() if method in ("GET", "HEAD") else api_error(405, "method not allowed")
        for contract in CONTRACTS.values():
            if path == contract.create_path:
                if method != "POST":
                    return api_error(405, "method not allowed")
                return self._create(contract, request, request_id)
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

    def _find(self, contract: Contract, job_id: str) -> SampleJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.contract is contract else None

    def _create(self, contract: Contract, request: Request, request_id: str) -> Reply:
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
            job = SampleJob(job_id, contract, options, self.timing, now, time.time(), started)
            self._jobs[job_id] = job
        if self.worker_log is not None:
            self.worker_log.add(job, request_id)
        origin = f"http://{request.headers.get('Host') or self.fallback_host}"
        return contract.accepted(job, origin)

    def _result(self, job: SampleJob, request: Request) -> Reply:
        return job.contract.result(job, job.phase(self._clock()))

    def _status(self, job: SampleJob, request: Request) -> Reply:
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
    def _freshness(job: SampleJob) -> tuple[tuple[str, str], ...]:
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
        return Reply(200, EXPORT_PAGE.encode(), (("Content-Type", "text/html; charset=utf-8"), NO_STORE))


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
        worker_log: str | Path | None = None,
    ) -> None:
        """``worker_log``: a file the jobs' transitions are appended to as JSON lines."""
        self._api = _JobAPI(name, timing, time.monotonic)
        self._api.worker_log = WorkerLog(worker_log) if worker_log is not None else None
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
        if self._api.worker_log is not None:
            self._api.worker_log.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._api.worker_log is not None:
            self._api.worker_log.stop()
