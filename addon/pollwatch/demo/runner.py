"""`pollwatch demo`: the sample API, a real mitmdump with pollwatch, and real clients.

Scenarios run one after another so each job (and its findings) belongs to one scenario; the
live warnings are the proxy's own output lines, shown as they arrive.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pollwatch.demo.api import SampleAPI
from pollwatch.demo.cache import SharedCache
from pollwatch.demo.clients import PollOutcome
from pollwatch.demo.jobs import Timing
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.demo.scenarios import Scenario, run_scenario

WARN_LEVELS = ("info", "warning", "error")
IDLE_AFTER_SCENARIOS = 2.5  # long enough for the live abandoned-polling check to fire
FLUSH_WAIT = 1.0


@dataclass
class ScenarioResult:
    scenario: Scenario
    started: float
    ended: float
    outcome: PollOutcome | None = None
    error: str | None = None
    jobs: list[dict] = field(default_factory=list)
    codes: set[str] = field(default_factory=set)
    worker_log: bool = False
    """The proxy followed the sample API's worker log: the scenario's worker codes are expected too."""

    @property
    def expected(self) -> set[str]:
        return set(self.scenario.expected_codes) | (set(self.scenario.worker_codes) if self.worker_log else set())

    @property
    def missing(self) -> set[str]:
        return self.expected - self.codes

    @property
    def unexpected(self) -> set[str]:
        """Warnings on a scenario that expects none: a false alarm."""
        return self.codes - set(self.scenario.expected_codes) if not self.scenario.expected_codes else set()

    @property
    def short_of(self) -> str | None:
        """The state the scenario's client should have reached and did not."""
        reached = self.outcome.final_state if self.outcome is not None else None
        return self.scenario.reaches if self.scenario.reaches not in (None, reached) else None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.missing and not self.unexpected and self.short_of is None


@dataclass
class DemoRun:
    db: Path
    record: Path | None
    results: list[ScenarioResult]
    proxy_lines: list[str]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def run_demo(scenarios: Sequence[Scenario], *, db: Path, record: Path | None, timing: Timing = Timing(),
             on_line: Callable[[str], None] | None = None,
             on_scenario: Callable[[Scenario], None] | None = None,
             options: Sequence[str] = (), worker_log: Path | None = None) -> DemoRun:
    """Run the scenarios through a fresh proxy; fills `db` and writes the `record` flow file.
    With `worker_log`, the sample API writes its jobs' transitions there and the proxy follows it.

    Scenarios that need proxy options of their own (`Scenario.proxy_options`) run afterwards, a
    proxy per set of options, into the same database and not into the recording."""
    for path in (db, record, worker_log):
        if path is not None:
            for stale in path.parent.glob(path.name + "*"):
                stale.unlink()
    groups = _by_proxy_options(scenarios)
    record = record if () in groups else None
    results: list[ScenarioResult] = []
    lines: list[str] = []
    # the sample API logs each transition at the instant its status changes, on the proxy's clock: no grace
    following = (f"pollwatch_worker_log={worker_log}", "pollwatch_worker_grace=0") if worker_log is not None else ()
    with SampleAPI(timing=timing, worker_log=worker_log) as api, SampleAPI(name="staging", timing=timing) as staging, \
            SharedCache(api.url) as cache:
        for extra, group in groups.items():
            with ProxyProcess(db, record=None if extra else record, on_line=on_line,
                              options=[*options, *following, *extra]) as proxy, \
                    httpx.Client(proxy=proxy.url, trust_env=False, timeout=15) as client, \
                    httpx.Client(proxy=proxy.url, trust_env=False, timeout=15) as other_client:
                for scenario in group:
                    if on_scenario is not None:
                        on_scenario(scenario)
                    result = ScenarioResult(scenario, started=time.time(), ended=0.0, worker_log=bool(following))
                    try:
                        result.outcome = run_scenario(scenario, api=api, staging=staging, cache=cache,
                                                      client=client, other_client=other_client)
                    except Exception as exc:  # a demo client failing is a result to show, not a crash
                        result.error = f"{type(exc).__name__}: {exc}"
                    result.ended = time.time()
                    results.append(result)
                time.sleep(IDLE_AFTER_SCENARIOS if any(s.client.gives_up_after for s in group) else FLUSH_WAIT)
                proxy.stop()
                lines += proxy.lines
    _attribute(db, results)
    return DemoRun(db=db, record=record, results=results, proxy_lines=lines)


def _by_proxy_options(scenarios: Sequence[Scenario]) -> dict[tuple[str, ...], list[Scenario]]:
    """Scenarios grouped by the proxy options they need; plain ones first, then in catalogue order."""
    groups: dict[tuple[str, ...], list[Scenario]] = {}
    for scenario in sorted(scenarios, key=lambda s: s.proxy_options != ()):
        groups.setdefault(scenario.proxy_options, []).append(scenario)
    return groups


def _attribute(db: Path, results: list[ScenarioResult]) -> None:
    """Give each scenario the jobs created while it ran, and their findings."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        jobs = [dict(r) | {"states": json.loads(r["states"] or "[]")}
                for r in conn.execute("select * from jobs order by created_at")]
        findings = [dict(r) for r in conn.execute("select job_key, code from findings")]
    for result, following in zip(results, [*results[1:], None]):
        until = following.started if following is not None else float("inf")
        result.jobs = [j for j in jobs if result.started <= j["created_at"] < until]
        keys = {j["key"] for j in result.jobs}
        result.codes = {f["code"] for f in findings if f["job_key"] in keys}


class LineFeed:
    """Hands the proxy's pollwatch warning lines to a printer, from mitmdump's reader thread."""

    def __init__(self, show: Callable[[str, str], None]) -> None:
        self._show = show
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        marker = "[pollwatch] "
        if marker not in line:
            return
        text = line.split(marker, 1)[1]
        level = text.split(":", 1)[0]
        if level in WARN_LEVELS:
            with self._lock:
                self._show(level, text.split(": ", 1)[1])
