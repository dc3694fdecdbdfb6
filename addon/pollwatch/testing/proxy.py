"""The proxies the fixtures start: a watching mitmdump (`WatchedProxy`), and one serving a failure
variant through server replay (`ServedVariant`). Both keep their database, mitmproxy's CA and
confdir in a folder of their own, and answer "which jobs and findings belong to this test".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pollwatch.demo.proxy import ProxyProcess
from pollwatch.mitm import mitmdump
from pollwatch.mitm.batch import SECONDS as BATCH_SECONDS
from pollwatch.store.database import FLUSH_INTERVAL
from pollwatch.store.query import list_findings, list_jobs
from pollwatch.store.reading import open_database
from pollwatch.testing.cases import Case, VariantFile
from pollwatch.testing.variants import serving_file

SETTLE = BATCH_SECONDS + FLUSH_INTERVAL + 0.2
"""How long after the last traffic the writer has surely flushed it (it writes every 0.5 s; with
`pollwatch_batch`, the watcher handles a live flow within 0.1 s)."""


class Window:
    """A stretch of time (a test): what the proxy saw from `start` to `end` belongs to it."""

    def __init__(self, start: float | None = None, end: float | None = None) -> None:
        self.start = time.time() if start is None else start
        self.end = end

    def close(self) -> "Window":
        self.end = time.time()
        return self

    def holds(self, when: float) -> bool:
        return self.start <= when <= (self.end or time.time())


def identity(finding: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one stored finding from another (a finding is read again by later checks)."""
    return finding["code"], finding["job_key"], finding["ts"], finding["message"]


def late_findings(findings: list[dict[str, Any]], jobs: list[dict[str, Any]], windows: dict[str, Window],
                  counted: set[tuple[Any, ...]]) -> dict[str, list[dict[str, Any]]]:
    """Findings of a shared proxy no test's check saw (raised after its test ended), by the test
    owning their job: the one during which the job was created."""
    owner = {j["key"]: next((n for n, w in windows.items() if w.holds(j["created_at"])), None) for j in jobs}
    late: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        nodeid = owner.get(f["job_key"])
        if nodeid is not None and identity(f) not in counted:
            late.setdefault(nodeid, []).append(f)
    return late


class WatchedProxy:
    """mitmdump + pollwatch on a free loopback port, its files in `folder`.

    `url` is the proxy for httpx (`proxy=`), Playwright (`proxy={"server": url}`) or `HTTPS_PROXY`;
    trust `ca_bundle` for HTTPS (mitmproxy's CA, generated in the folder, never in `~/.mitmproxy`).
    """

    def __init__(self, folder: Path, *, extra_args: Sequence[str] = (), options: Sequence[str] = ()) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "pollwatch.sqlite"
        self.confdir = folder / "mitmproxy"
        self.process = ProxyProcess(self.db, options=[f"confdir={self.confdir}", "flow_detail=1", *options],
                                    extra_args=extra_args)
        self.stopped = False

    def start(self) -> "WatchedProxy":
        self.process.start()
        return self

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ca_bundle(self) -> Path:
        """PEM file of the CA mitmproxy signs with: pass it as `verify=` or `SSL_CERT_FILE`."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    def stop(self) -> None:
        """Shut down cleanly: the addon ends the capture (jobs without a terminal state become
        `polling-abandoned`) and flushes the database."""
        if not self.stopped:
            self.stopped = True
            self.process.stop()

    def output_mark(self) -> int:
        return len(self.process.lines)

    def settle(self, since_mark: int | None = None) -> None:
        """Wait until what the proxy saw is in the database: nothing to wait for once stopped, or
        when it printed nothing since `since_mark` (no traffic)."""
        if self.stopped or (since_mark is not None and self.output_mark() == since_mark):
            return
        time.sleep(SETTLE)

    def jobs(self, window: Window | None = None) -> list[dict[str, Any]]:
        """Jobs created in `window` (all without one), as `pollwatch jobs --format json` lists them."""
        self.settle()
        return self.read(window)[0]

    def findings(self, window: Window | None = None) -> list[dict[str, Any]]:
        """Findings of `window`'s jobs or raised in it, as `pollwatch warnings --format json` lists them."""
        self.settle()
        return self.read(window)[1]

    def read(self, window: Window | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not self.db.exists():
            return [], []
        conn = open_database(self.db)
        try:
            jobs, findings = list_jobs(conn), list_findings(conn)
        finally:
            conn.close()
        if window is None:
            return jobs, findings
        mine = [j for j in jobs if window.holds(j["created_at"])]
        keys = {j["key"] for j in mine}
        # a finding of a job is its owner's, whenever raised (a timer fires in a later test);
        # the time it was raised decides only for findings without a job
        return mine, [f for f in findings if f["job_key"] in keys or (f["job_key"] is None and window.holds(f["ts"]))]


class ServedVariant:
    """A failure variant served by mitmproxy's server replay, pollwatch watching.

    Point the client at `base_url` (the recorded origin: the recorded URLs are what is served)
    through `proxy_url`; `case` says what a correct client must do and the state it ends on.
    """

    def __init__(self, directory: Path, name: str, folder: Path, *, extra: str = "kill",
                 options: Sequence[str] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        served = folder / f"{name}.served.flows"
        self.variant: VariantFile = serving_file(directory, name, served)
        self.proxy = WatchedProxy(folder, extra_args=mitmdump.serve_args(served, extra=extra), options=options)

    def start(self) -> "ServedVariant":
        self.proxy.start()
        return self

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def case(self) -> Case:
        return self.variant.case

    @property
    def final_state(self) -> str:
        return self.variant.case.final_state

    @property
    def proxy_url(self) -> str:
        return self.proxy.url

    @property
    def ca_bundle(self) -> Path:
        return self.proxy.ca_bundle

    @property
    def base_url(self) -> str:
        return self.variant.base_url

    @property
    def create_url(self) -> str:
        return self.variant.create_url

    def missing_traffic(self, jobs: list[dict[str, Any]]) -> str | None:
        """Why the client did not exercise the variant (a test that sends nothing must not pass):
        its job must have been created and its terminal status answer served."""
        job = next((j for j in jobs if j["job_id"] == self.variant.job_id), None)
        if job is None:
            return (f"pollwatch: variant {self.name}: the client never created job {self.variant.job_id} "
                    f"({self.variant.create_method} {self.variant.create_url} through {self.proxy_url}); "
                    f"run your client against base_url {self.base_url} with proxy_url as its proxy")
        if job["terminal_state"] is None:
            return (f"pollwatch: variant {self.name}: the client never got the terminal status answer of job "
                    f"{self.variant.job_id} (states seen: {' → '.join(job['states']) or '-'}); "
                    f"a correct client must {self.case.must}")
        return None

    def check_final_state(self, state: str | None) -> None:
        """Fail unless the client ended where a correct client ends (the hook a test fills in)."""
        if (state or "").lower() != self.final_state:
            raise AssertionError(f"variant {self.name}: the client ended on {state!r}, a correct client ends on "
                                 f"{self.final_state!r}; a correct client must {self.case.must}")


class ProxyForTest:
    """What the `pollwatch_proxy` fixture gives one test: the proxy (its own, or the run's shared
    one), and this test's jobs and findings only."""

    def __init__(self, proxy: WatchedProxy, window: Window | None) -> None:
        self.proxy = proxy
        self.window = window

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def db(self) -> Path:
        return self.proxy.db

    @property
    def ca_bundle(self) -> Path:
        return self.proxy.ca_bundle

    @property
    def pid(self) -> int:
        return self.proxy.pid

    def jobs(self) -> list[dict[str, Any]]:
        return self.proxy.jobs(self.window)

    def findings(self) -> list[dict[str, Any]]:
        return self.proxy.findings(self.window)
