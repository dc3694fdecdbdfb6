"""Benchmark: `pollwatch report` on a large capture (default 2,000 jobs).

The database is built through the real core: synthetic exchanges (healthy jobs and the usual
faults: cacheable status, stuck ETag with 304s, shared-cache hits and stale states, 5xx, clients
that give up) go through `Tracker.observe` and `Store`, exactly as the proxy stores them. Then the
report is generated and timed, and, when Chromium is installed, loaded and timed in a browser.

    .venv/bin/python scripts/bench_report.py [--jobs 2000] [--out report.html] [--keep-db bench.sqlite]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pollwatch.core.observation import Observation
from pollwatch.report import write_report
from pollwatch.store.database import Session, Store
from pollwatch.core.tracking import Tracker

API = "http://api.bench.test"
START = 1_795_881_600.0  # 2026-11-28
FAULTS = (("healthy", 80), ("cached-status", 4), ("etag-stuck", 4), ("shared-cache", 3), ("flaky-5xx", 3),
          ("gives-up", 3), ("failed", 3))
"""Scenario mix, in percent of jobs: mostly healthy, as a real capture would be."""


class JobScript:
    """The exchanges of one job, on its own clock: a creation, then polls about 0.5-1.5 s apart."""

    def __init__(self, n: int, fault: str, start: float, rng: random.Random) -> None:
        self.n, self.fault, self.now, self.rng = n, fault, start, rng
        self.job_id = f"job-{n:05d}"
        self.url = f"{API}/api/exports/{self.job_id}"
        self.client = f"10.0.{n // 250}.{n % 250}:5{n % 1000:03d}"
        self.exchanges: list[Observation] = []

    def add(self, method: str, url: str, status: int, body: dict | None, headers: dict[str, str],
            request_headers: dict[str, str] | None = None) -> None:
        took = self.rng.uniform(0.01, 0.08)
        self.exchanges.append(Observation.make(
            flow_id=f"{self.job_id}-{len(self.exchanges)}", method=method, url=url, status=status,
            body=json.dumps(body) if body else b"", response_headers=headers, request_headers=request_headers or {},
            request_ts=self.now, response_ts=self.now + took, client=self.client))
        self.now += took + self.rng.uniform(0.5, 1.5)

    def poll(self, state: str | None, *, status: int = 200, cache: str = "no-store", **headers: str) -> None:
        body = {"id": self.job_id, "status": state} if state else None
        request = {"If-None-Match": headers.pop("if_none_match")} if "if_none_match" in headers else None
        self.add("GET", self.url, status, body, {"Cache-Control": cache, **{k.replace("_", "-"): v for k, v in
                                                                              headers.items()}}, request)

    def play(self) -> list[Observation]:
        self.add("POST", f"{API}/api/exports", 202, {"id": self.job_id, "status": "queued"},
                 {"Location": f"/api/exports/{self.job_id}", "Cache-Control": "no-store"})
        getattr(self, "_" + self.fault.replace("-", "_"))()
        return self.exchanges

    def _lifecycle(self, end: str = "succeeded", **cache: str) -> None:
        for state in ["queued"] * self.rng.randint(1, 2) + ["running"] * self.rng.randint(2, 6) + [end]:
            self.poll(state, **cache)

    def _healthy(self) -> None:
        self._lifecycle()

    def _failed(self) -> None:
        self._lifecycle("failed")

    def _cached_status(self) -> None:
        self._lifecycle(cache="max-age=30")

    def _etag_stuck(self) -> None:
        self.poll("queued", cache="no-cache", ETag='"v1"')
        for _ in range(self.rng.randint(4, 10)):
            self.poll(None, status=304, cache="no-cache", ETag='"v1"', if_none_match='"v1"')
        self.poll("succeeded", cache="no-cache", ETag='"v1"')

    def _shared_cache(self) -> None:
        for state in ("queued", "running", "running"):
            self.poll(state, cache="s-maxage=2", X_Cache="HIT", Age="1")
        self.poll("succeeded", cache="s-maxage=2", X_Cache="MISS")
        self.poll("running", cache="s-maxage=2", X_Cache="HIT", Age="2")
        self.poll("succeeded", cache="s-maxage=2", X_Cache="MISS")

    def _flaky_5xx(self) -> None:
        self.poll("queued")
        self.poll(None, status=503, cache="no-store", Retry_After="1")
        self.poll("running")
        self.poll("succeeded")

    def _gives_up(self) -> None:
        self.poll("queued")
        for _ in range(self.rng.randint(2, 4)):
            self.poll("running")


def exchanges(jobs: int, seed: int) -> Iterator[Observation]:
    """Every job's exchanges, interleaved in time as concurrent clients would produce them."""
    rng = random.Random(seed)
    names = [name for name, share in FAULTS for _ in range(share)]
    scripts = [JobScript(n, rng.choice(names), START + n * 0.4, rng) for n in range(1, jobs + 1)]
    yield from sorted((obs for s in scripts for obs in s.play()), key=lambda o: o.response_ts)


def build_database(path: Path, jobs: int = 2000, seed: int = 7) -> int:
    """A pollwatch database of `jobs` synthetic jobs written by the real core; returns the number
    of exchanges stored."""
    session = Session(source="synthetic", label=f"bench: {jobs} jobs")
    tracker = Tracker(key_prefix=session.id + "/")
    count = 0
    with Store(path, session) as store:
        for obs in exchanges(jobs, seed):
            update = tracker.observe(obs)
            if update is not None:
                store.submit(update)
                count += 1
        store.submit_findings(tracker.finish(tracker.clock + 120))
    return count


def browser_load_seconds(report: Path) -> float | None:
    """Seconds until Chromium has loaded and laid out the report, or None without Chromium."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.evaluate("document.body.getBoundingClientRect().height")  # force layout
            return time.perf_counter() - started
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="keep the report here (default: a temp folder)")
    parser.add_argument("--keep-db", type=Path, default=None, help="keep the database here (replaced)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.keep_db or Path(tmp) / "bench.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        out = args.out or Path(tmp) / "report.html"
        started = time.perf_counter()
        stored = build_database(db, args.jobs)
        print(f"built {db}: {args.jobs} jobs, {stored} exchanges through Tracker + Store "
              f"in {time.perf_counter() - started:.2f} s")
        stats = write_report(db, out)
        print(f"report: {stats.line()}")
        loaded = browser_load_seconds(out)
        print("browser: chromium not installed" if loaded is None else f"browser: Chromium loaded it in {loaded:.2f} s")


if __name__ == "__main__":
    main()
