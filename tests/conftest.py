"""Shared helpers for the test suite: observation builders for the pure core."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pollwatch.demo.api import SampleAPI, Timing
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.observation import Observation
from pollwatch.tracking import Tracker

API = "http://api.test:8080"
LIVE_TIMING = Timing(queued_s=0.3, running_s=0.9)
"""How long sample-API jobs stay queued and running in end-to-end tests."""


class Traffic:
    """Builds observations on a simple clock so rule tests read like timelines."""

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
        obs = Observation.make(flow_id=f"f{next(self._ids)}", method=method,
                               url=url if url.startswith("http") else API + url, status=status,
                               response_headers=headers or {}, request_headers=request_headers or {}, body=body,
                               request_ts=start, response_ts=start + took, client=client)
        if at is None:
            self.now = start + took + 1.0
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


@pytest.fixture
def traffic() -> Traffic:
    return Traffic(Tracker())


def codes(update) -> list[str]:
    return [f.code for f in update.findings] if update is not None else []


@pytest.fixture(scope="module")
def api():
    """The sample job API on loopback, one per test module."""
    with SampleAPI(timing=LIVE_TIMING) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, request):
    """A real mitmdump with pollwatch, one per test module; `proxy.db` is its SQLite file."""
    db = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "live.sqlite"
    with ProxyProcess(db) as process:
        yield process
