"""The catalogue of demo scenarios (SCENARIOS) and run_scenario, which plays one of them.

A scenario ties a contract and a server fault of the sample API to a client behaviour
(ClientOptions) and the pollwatch finding codes it should produce.  The same catalogue
drives ``pollwatch demo``, the end-to-end tests and the recorded sample sessions; the
pollers themselves are in clients.py.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlencode

import httpx

from pollwatch.demo.api import SampleAPI
from pollwatch.demo.cache import SharedCache
from pollwatch.demo.clients import (
    ClientOptions,
    PollOutcome,
    poll_job,
    poll_status,
    status_url_from,
)
from pollwatch.demo.contracts import CONTRACTS

__all__ = [
    "SCENARIOS",
    "Scenario",
    "run_scenario",
]


@dataclass(frozen=True)
class Scenario:
    """One reproducible job run: a contract, a server fault, client behaviour, and the
    pollwatch finding codes it should produce."""

    name: str
    description: str
    contract: str
    fault: str = "healthy"
    client: ClientOptions = ClientOptions()
    expected_codes: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    """Extra create-request query parameters (ttl, lag, delay, end)."""
    second_poller: ClientOptions | None = None
    """If set, a second poller then polls the same status URL (another tab/service)."""
    second_poller_when_done: bool = False
    """Start the second poller alongside the first, just after the worker finished the job."""
    proxy_options: tuple[str, ...] = ()
    """`--set` values the proxy needs for this scenario (verification, the fix). Such a scenario
    runs through a proxy of its own and is live only: a recording cannot ask the origin again,
    and a fixed recording holds the changed responses."""
    reaches: str | None = None
    """The state the client must end on (a fix that works lets it reach the end)."""
    worker_codes: tuple[str, ...] = ()
    """Codes expected besides `expected_codes` when the proxy follows the sample API's worker log
    (the live demo); recordings carry no worker log, so these are live only."""

    def create_url(self, base_url: str) -> str:
        query = urlencode([("fault", self.fault), *self.params])
        return f"{base_url.rstrip('/')}{CONTRACTS[self.contract].create_path}?{query}"


def _scenarios(*scenarios: Scenario) -> Mapping[str, Scenario]:
    return MappingProxyType({s.name: s for s in scenarios})


SCENARIOS: Mapping[str, Scenario] = _scenarios(
    Scenario("healthy", "Export job polled to success; nothing to report.", "export"),
    Scenario(
        "healthy-azure",
        "Azure-style operation (absolute Operation-Location, PascalCase status) to Succeeded.",
        "azure",
    ),
    Scenario(
        "healthy-monitor",
        "Status monitor: 202 + Retry-After while pending, then 303 to the report.",
        "monitor",
    ),
    Scenario("healthy-google", "Google-style operation polled until done.", "google"),
    Scenario(
        "cached-status",
        "Status responses say Cache-Control: max-age=30; any cache would freeze the job.",
        "export",
        "cached-status",
        expected_codes=("status-cacheable",),
    ),
    Scenario(
        "cached-heuristic",
        "No Cache-Control but an old Last-Modified: heuristically fresh for seconds.",
        "export",
        "cached-heuristic",
        expected_codes=("status-cacheable",),
    ),
    Scenario(
        "shared-cache",
        "A shared cache honours s-maxage=2 and replays queued/running after the job ended; "
        "another service that bypasses the cache already saw it succeed.",
        "export",
        "shared-cache",
        expected_codes=("status-cacheable", "status-from-shared-cache", "stale-status"),
        worker_codes=("client-behind-worker",),
        second_poller=ClientOptions(max_polls=1, headers=(("Cache-Control", "no-cache"),)),
        second_poller_when_done=True,
    ),
    Scenario(
        "etag-stuck",
        "Constant ETag whatever the state: a revalidating poller gets 304 forever; "
        "a fresh poller then sees the same ETag on the finished job.",
        "export",
        "etag-stuck",
        client=ClientOptions(max_polls=15),
        expected_codes=("status-not-modified", "etag-reused-across-states"),
        second_poller=ClientOptions(conditional=False),
    ),
    Scenario(
        "replica-lag",
        "Reads alternate primary/replica; the replica lags 0.6 s. A second poller right "
        "after success reads the replica first: succeeded -> running -> succeeded.",
        "export",
        "replica-lag",
        expected_codes=("state-regression",),
        worker_codes=("worker-ahead-of-status", "client-behind-worker"),
        second_poller=ClientOptions(),
    ),
    Scenario(
        "slow-then-fast",
        "setInterval-style poller; the 2nd answer (queued) is held 0.8 s and arrives "
        "after newer running answers.",
        "export",
        "slow-then-fast",
        client=ClientOptions(concurrent=True),
        expected_codes=("response-reordered",),
    ),
    Scenario(
        "expired",
        "Once finished the job is gone: polls get 410 Gone instead of the result.",
        "export",
        "expired",
        expected_codes=("job-expired",),
    ),
    Scenario(
        "missing",
        "The job disappears after the first poll: 404 for an id that existed.",
        "export",
        "missing",
        expected_codes=("job-missing",),
    ),
    Scenario(
        "failed",
        "The job ends in the failed state (a normal outcome, not a protocol fault).",
        "export",
        "failed",
    ),
    Scenario(
        "flaky-5xx",
        "Every 2nd poll answers 503 + Retry-After: 1; the poller retries.",
        "export",
        "flaky-5xx",
        expected_codes=("status-error",),
    ),
    Scenario(
        "lost-id",
        "The client polls a mangled job id; the server answers 404.",
        "export",
        client=ClientOptions(lost_id=True),
        expected_codes=("unknown-job",),
    ),
    Scenario(
        "wrong-env",
        "The client polls the prod job id on the staging host, which answers 404.",
        "export",
        client=ClientOptions(wrong_env=True),
        expected_codes=("wrong-environment",),
    ),
    Scenario(
        "gives-up",
        "The client stops after 3 polls while the job is still pending.",
        "export",
        client=ClientOptions(gives_up_after=3),
        expected_codes=("polling-abandoned",),
    ),
    Scenario(
        "ignores-terminal",
        "The client keeps polling 3 more times after the job succeeded.",
        "export",
        client=ClientOptions(extra_polls_after_terminal=3),
        expected_codes=("poll-after-terminal",),
    ),
    Scenario(
        "too-fast",
        "The server asks for Retry-After: 1; the client polls every 0.1 s anyway.",
        "export",
        "too-fast",
        client=ClientOptions(honour_retry_after=False),
        expected_codes=("poll-too-fast",),
    ),
    Scenario(
        "etag-stuck-proved",
        "etag-stuck with one revalidating client that only ever sees 304s; pollwatch_verify asks the "
        "origin itself and proves the ETag was reused.",
        "export",
        "etag-stuck",
        client=ClientOptions(max_polls=15),
        expected_codes=("etag-reused-across-states",),
        proxy_options=("pollwatch_verify=true", "pollwatch_verify_interval=0"),
    ),
    Scenario(
        "etag-stuck-fixed",
        "etag-stuck again with pollwatch_fix=no-store: the client reaches succeeded, and the findings "
        "still describe the server's original responses.",
        "export",
        "etag-stuck",
        expected_codes=("etag-reused-across-states",),
        proxy_options=("pollwatch_fix=no-store",),
        reaches="succeeded",
    ),
)
"""Every demo scenario by name."""


def run_scenario(
    scenario: Scenario,
    *,
    api: SampleAPI,
    staging: SampleAPI | None = None,
    cache: SharedCache | None = None,
    client: httpx.Client,
    other_client: httpx.Client | None = None,
) -> PollOutcome:
    """Create one job of ``scenario`` on ``api`` and poll it with ``client``.

    A second poller (another tab or service) uses ``other_client`` when given, so that it
    has connections of its own, as a separate client would.

    ``shared-cache`` goes through ``cache`` (which must front ``api``), ``wrong-env``
    polls ``staging``.  With a second poller the returned outcome concatenates both
    pollers' ``seen`` and keeps the last final state.
    """
    base_url = api.url
    if scenario.fault == "shared-cache":
        if cache is None:
            raise ValueError(f"scenario {scenario.name!r} needs a SharedCache in front of the API")
        base_url = cache.url
    wrong_env_url = None
    if scenario.client.wrong_env:
        if staging is None:
            raise ValueError(f"scenario {scenario.name!r} needs a staging SampleAPI")
        wrong_env_url = staging.url
    if scenario.second_poller is not None and scenario.second_poller_when_done:
        done_after = api.timing.queued_s + api.timing.running_s + 0.2
        return _poll_alongside(client, other_client or client, scenario.create_url(base_url), scenario.client,
                               scenario.second_poller, done_after)
    outcome = poll_job(
        client,
        scenario.create_url(base_url),
        lost_id=scenario.client.lost_id,
        wrong_env_url=wrong_env_url,
        **scenario.client.status_kwargs(),
    )
    if scenario.second_poller is None:
        return outcome
    second = poll_status(other_client or client, outcome.status_url, **scenario.second_poller.status_kwargs())
    return _merge(outcome, second)


def _poll_alongside(client: httpx.Client, other_client: httpx.Client, create_url: str, first: ClientOptions,
                    second: ClientOptions, second_after: float) -> PollOutcome:
    """Create a job; poll it with `first` while `second` (another service, say) starts polling
    the same status URL `second_after` seconds after creation."""
    created = client.post(create_url)
    created.raise_for_status()
    status_url = status_url_from(created)

    def later() -> PollOutcome:
        time.sleep(second_after)
        return poll_status(other_client, status_url, **second.status_kwargs())

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(later)
        outcome = poll_status(client, status_url, **first.status_kwargs())
        return _merge(outcome, pending.result())


def _merge(first: PollOutcome, second: PollOutcome) -> PollOutcome:
    return PollOutcome(
        status_url=first.status_url,
        seen=first.seen + second.seen,
        final_state=second.final_state or first.final_state,
        result_url=second.result_url or first.result_url,
        result_status=second.result_status or first.result_status,
    )
