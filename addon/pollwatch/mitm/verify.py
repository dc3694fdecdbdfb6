"""Active verification, opt-in (`--set pollwatch_verify=true`): pollwatch's own request to the
origin when a cache answered a poll (or may answer the next ones).

What is sent: the client's poll again, GET on the same URL with the same end-to-end headers
(authorisation, cookies, Accept, ...), without `If-None-Match`/`If-Modified-Since`, with
`Cache-Control: no-cache` and `X-Pollwatch-Check: 1`, straight to the origin (not through the
proxy, not through an environment proxy). It runs as an asyncio task with a timeout, so the
client's flow is never held, changed or re-sent; which polls are checked, how often, and what the
answer means are the core's decisions (`pollwatch.core.verification`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from mitmproxy import http

from pollwatch.core.findings import Finding
from pollwatch.core.observation import BODY_EXCERPT_LIMIT
from pollwatch.core.records import Update
from pollwatch.core.verification import (
    CHECK_HEADER,
    REMEMBERED_JOBS,
    CheckPlan,
    OriginAnswer,
    Schedule,
    plan_check,
)
from pollwatch.errors import first_line
from pollwatch.mitm.compat import create_task

log = logging.getLogger("pollwatch")

NOT_RESENT = frozenset({
    # validators and cache directives: the check must reach the origin and get a full answer
    "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "cache-control", "pragma",
    # hop-by-hop, meant for the proxy, or describing the client's own connection and body
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding",
    "upgrade", "expect", "content-length", "accept-encoding", CHECK_HEADER.lower(),
})
CHECK_HEADERS = ((b"Cache-Control", b"no-cache"), (b"Pragma", b"no-cache"), (CHECK_HEADER.encode(), b"1"))


@dataclass(frozen=True)
class Fetch:
    """Where and how to ask: the address the client's request went to, with its headers as the
    client sent them (raw bytes: a UTF-8 cookie or a Latin-1 credential is passed on untouched)."""

    url: str
    headers: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def of(cls, flow: http.HTTPFlow) -> Fetch:
        kept = [(k, v) for k, v in flow.request.headers.fields if k.decode("latin-1").lower() not in NOT_RESENT]
        cookies = [v for k, v in kept if k.lower() == b"cookie"]
        if len(cookies) > 1:  # HTTP/2 sends cookie crumbs as fields of their own; HTTP/1.1 wants one line
            kept = [(k, v) for k, v in kept if k.lower() != b"cookie"] + [(b"cookie", b"; ".join(cookies))]
        return cls(flow.request.url, tuple(kept) + CHECK_HEADERS)


@dataclass(frozen=True)
class Trust:
    """How the check verifies the origin's certificate: as mitmproxy does for its upstream
    connections (`ssl_insecure`, `ssl_verify_upstream_trusted_ca`, `..._confdir`)."""

    insecure: bool = False
    ca_file: str | None = None
    ca_dir: str | None = None

    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify`: a context with the CAs mitmproxy was told to trust, else the default."""
        if self.insecure:
            return False
        if self.ca_file or self.ca_dir:
            return ssl.create_default_context(cafile=self.ca_file, capath=self.ca_dir)
        return True


class Verifier:
    """Plans, rate-limits and sends origin checks; hands each answer to `deliver` on the event loop."""

    def __init__(self, deliver: Callable[[CheckPlan, OriginAnswer], None]) -> None:
        self.enabled = False
        self.timeout = 5.0
        self.trust = Trust()
        self.schedule = Schedule()
        self._deliver = deliver
        self._fetches: OrderedDict[str, Fetch] = OrderedDict()  # job key -> its latest checkable poll
        self._tasks: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None
        self._client_settings: tuple[float, Trust] | None = None
        self._client_lock = asyncio.Lock()

    def configure(self, *, enabled: bool, interval: float, timeout: float, trust: Trust) -> None:
        self.enabled, self.timeout, self.trust = enabled, timeout, trust
        self.schedule.interval = interval

    # --- hooks' side (event loop, never waits) -------------------------------------------------

    def consider(self, flow: http.HTTPFlow, update: Update, stale_date_after: float) -> None:
        """After the tracker observed `flow`, live traffic: start a check if the core says this poll
        needs one."""
        if not self.enabled or flow.is_replay or update.job is None or update.poll is None:
            return  # replayed traffic: its origin is not asked
        if update.poll.flow_id != flow.id:
            return
        if update.job.terminal_state is not None:
            self._fetches.pop(update.job.key, None)  # no check left to make: forget its credentials
            return
        plan = plan_check(update, stale_date_after)
        if plan is None:
            return
        self._fetches.pop(plan.job_key, None)
        self._fetches[plan.job_key] = Fetch.of(flow)
        if len(self._fetches) > REMEMBERED_JOBS:
            self._fetches.popitem(last=False)
        if self.schedule.admit(plan, update.job.polls, time.time()):
            self._start(plan, self._fetches[plan.job_key])

    def abandoned(self, findings: Sequence[Finding]) -> None:
        """One last check of each job whose polling was just called abandoned, if it was checkable."""
        if not self.enabled:
            return
        for finding in findings:
            if finding.code != "polling-abandoned" or finding.job_key not in self._fetches:
                continue
            plan = self.schedule.abandoned(finding.job_key, finding.evidence.get("last_state"), time.time())
            if plan is not None:
                self._start(plan, self._fetches[finding.job_key])

    def _start(self, plan: CheckPlan, fetch: Fetch) -> None:
        task = create_task(self._check(plan, fetch), name=f"pollwatch origin check {plan.job_key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the check (an asyncio task) -------------------------------------------------------------

    async def _check(self, plan: CheckPlan, fetch: Fetch) -> None:
        sent = time.time()
        try:
            answer = await asyncio.wait_for(self._fetch(fetch, sent), self.timeout + 1.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an unreachable origin is a result, not a crash
            text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            answer = OriginAnswer(sent_at=sent, error=first_line(text))
        finally:
            self.schedule.done(plan.job_key)
        self._deliver(plan, answer)

    async def _fetch(self, fetch: Fetch, sent: float) -> OriginAnswer:
        client = await self._http_client()
        async with client.stream("GET", fetch.url, headers=list(fetch.headers)) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > BODY_EXCERPT_LIMIT:
                    break
            return OriginAnswer(sent_at=sent, received_at=time.time(), status=response.status_code,
                                headers=list(response.headers.multi_items()), body=bytes(body[:BODY_EXCERPT_LIMIT]))

    async def _http_client(self) -> httpx.AsyncClient:
        """One client for every check (kept-alive connections); built off the event loop, since
        loading CA bundles takes a moment. `trust_env=False`: never through HTTP(S)_PROXY."""
        settings = (self.timeout, self.trust)
        async with self._client_lock:
            if self._client is None or self._client_settings != settings:
                old = self._client
                self._client = await asyncio.to_thread(self._new_client)
                self._client_settings = settings
                if old is not None:
                    await old.aclose()
            return self._client

    def _new_client(self) -> httpx.AsyncClient:
        for name in ("httpx", "httpcore"):  # their INFO lines would print each check's URL, secrets and all
            logging.getLogger(name).setLevel(logging.WARNING)
        return httpx.AsyncClient(timeout=self.timeout, verify=self.trust.verify(), trust_env=False,
                                 follow_redirects=False)

    # --- shutdown and tests --------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait for the checks under way (tests; a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        """Cancel checks under way and let go of the connections."""
        for task in list(self._tasks):
            task.cancel()
        client, self._client = self._client, None
        if client is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            log.debug("no event loop to close the origin-check client on")
            return
        create_task(client.aclose(), name="pollwatch origin check client close")
