"""Real httpx pollers for the sample API.

``poll_job`` is a poller written "the usual way": create the job, find the status
URL (Operation-Location, else Location, else the body), then GET it until a terminal
state.  Like a browser it remembers the last ETag and revalidates with
``If-None-Match``.  Keyword options switch on the client-side mistakes pollwatch
should catch (lost ids, wrong environment, giving up, ignoring the terminal state,
ignoring Retry-After, setInterval-style overlapping polls); ClientOptions bundles them.
It is one poller with one switch per mistake, so it stays in one module (about 370 lines).

The caller owns the ``httpx.Client``; pass ``httpx.Client(proxy=...)`` to go through
mitmproxy.  Nothing here reads proxy settings itself.  The scenarios built from these
pollers are in scenarios.py.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import httpx

__all__ = [
    "TERMINAL_STATES",
    "ClientOptions",
    "PollOutcome",
    "poll_job",
    "poll_status",
    "status_url_from",
]

TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled", "cancelled"})
"""Lower-cased state words after which a job never changes again."""


@dataclass
class PollOutcome:
    """What one poller saw: ``seen`` holds (HTTP status, state word or None) per poll.

    State words are the body's ``status`` lower-cased (``notstarted``, ``running``,
    ``succeeded`` ...).  Google operations have no word, so ``done`` is rendered as
    ``running`` / ``succeeded`` / ``failed``.  Answers without a word (empty 202,
    303, 404) are recorded as None.  ``seen`` is in order of *arrival*.
    """

    status_url: str
    seen: list[tuple[int, str | None]] = field(default_factory=list)
    final_state: str | None = None
    """First terminal state reached (303 and state-less 200 reports count as succeeded)."""
    result_url: str | None = None
    """Result fetched once after success (export download, monitor report)."""
    result_status: int | None = None

    @property
    def polls(self) -> int:
        return len(self.seen)

    @property
    def states(self) -> list[str]:
        """The state words seen, in arrival order, without the None entries."""
        return [state for _, state in self.seen if state is not None]


class _Next(Enum):
    """What a poller does after one answer."""

    CONTINUE = "continue"
    TERMINAL = "terminal"
    STOP = "stop"


@dataclass(frozen=True)
class _Reading:
    """One interpreted status answer."""

    status: int
    state: str | None
    next: _Next
    final_state: str | None = None
    retry_after: float | None = None
    result_url: str | None = None


@dataclass(frozen=True)
class _PollSettings:
    interval: float
    max_polls: int
    timeout: float
    gives_up_after: int | None
    extra_polls_after_terminal: int
    honour_retry_after: bool
    concurrent: bool
    conditional: bool
    headers: tuple[tuple[str, str], ...] = ()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:  # HTTP-date form: the sample API never sends it
        return None


def _json(body: bytes) -> Any:
    try:
        return httpx.Response(200, content=body).json()
    except ValueError:
        return None


def _interpret(response: httpx.Response, body: bytes) -> _Reading:
    """Read one status answer the way common clients do (case-insensitive words, 202, 303)."""
    status = response.status_code
    retry_after = _retry_after(response)
    if status == 303:
        location = response.headers.get("Location")
        result = str(response.url.join(location)) if location else None
        return _Reading(status, None, _Next.TERMINAL, "succeeded", retry_after, result)
    if status in (404, 410) or (400 <= status < 500 and status != 429):
        return _Reading(status, None, _Next.STOP, retry_after=retry_after)
    if status >= 500 or status == 429:
        return _Reading(status, None, _Next.CONTINUE, retry_after=retry_after)
    payload = _json(body) if body else None
    state = _state_word(payload)
    if status == 202 or (status != 304 and status >= 300):
        return _Reading(status, state, _Next.CONTINUE, retry_after=retry_after)
    if isinstance(payload, dict) and state is None and status != 304:
        # A 200 without any status field is the finished resource itself (monitor, end=200).
        return _Reading(status, None, _Next.TERMINAL, "succeeded", retry_after)
    if state in TERMINAL_STATES:
        result = payload.get("result") if state == "succeeded" else None
        result_url = str(response.url.join(result)) if isinstance(result, str) else None
        return _Reading(status, state, _Next.TERMINAL, state, retry_after, result_url)
    return _Reading(status, state, _Next.CONTINUE, retry_after=retry_after)


def _state_word(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("status"), str):
        return payload["status"].lower()
    if "done" in payload:
        if not payload["done"]:
            return "running"
        return "failed" if "error" in payload else "succeeded"
    return None


class _Poller:
    """Polls one status URL; keeps the browser-like ETag memory and the outcome."""

    def __init__(self, client: httpx.Client, status_url: str, settings: _PollSettings) -> None:
        self._client = client
        self._settings = settings
        self._lock = threading.Lock()
        self._etag: str | None = None
        self._etag_body = b""
        self._ended = threading.Event()
        self.outcome = PollOutcome(status_url)

    def run(self) -> PollOutcome:
        last = self._run_concurrent() if self._settings.concurrent else self._run_sequential()
        if self.outcome.final_state is not None:
            self._poll_after_terminal(last)
            self._fetch_result()
        return self.outcome

    def _may_poll(self, polls: int, deadline: float) -> bool:
        settings = self._settings
        if settings.gives_up_after is not None and polls >= settings.gives_up_after:
            return False
        return polls < settings.max_polls and time.monotonic() < deadline

    def _run_sequential(self) -> _Reading | None:
        deadline = time.monotonic() + self._settings.timeout
        reading: _Reading | None = None
        polls = 0
        while self._may_poll(polls, deadline):
            reading = self._poll()
            polls += 1
            if reading.next is not _Next.CONTINUE:
                break
            time.sleep(self._pause(reading))
        return reading

    def _run_concurrent(self) -> _Reading | None:
        """setInterval-style: fire every ``interval`` without waiting for answers."""
        settings = self._settings
        deadline = time.monotonic() + settings.timeout
        futures: list[Future[_Reading]] = []
        with ThreadPoolExecutor(max_workers=min(settings.max_polls, 16) or 1) as pool:
            next_at = time.monotonic()
            while not self._ended.is_set() and self._may_poll(len(futures), deadline):
                futures.append(pool.submit(self._poll))
                next_at += settings.interval
                self._ended.wait(max(0.0, next_at - time.monotonic()))
            wait(futures)
        readings = [f.result() for f in futures]
        return next((r for r in readings if r.next is _Next.TERMINAL), readings[-1] if readings else None)

    def _poll_after_terminal(self, last: _Reading | None) -> None:
        for _ in range(self._settings.extra_polls_after_terminal):
            time.sleep(self._pause(last))
            last = self._poll()

    def _pause(self, reading: _Reading | None) -> float:
        pause = self._settings.interval
        if reading is not None and reading.retry_after and self._settings.honour_retry_after:
            pause = max(pause, reading.retry_after)
        return pause

    def _poll(self) -> _Reading:
        headers = dict(self._settings.headers)
        with self._lock:
            if self._settings.conditional and self._etag is not None:
                headers["If-None-Match"] = self._etag
        response = self._client.get(self.outcome.status_url, headers=headers)
        with self._lock:
            body = response.content
            if response.status_code == 304:
                body = self._etag_body  # like a browser: the stored copy is still valid
            elif response.status_code == 200 and "ETag" in response.headers:
                self._etag, self._etag_body = response.headers["ETag"], body
            reading = _interpret(response, body)
            self.outcome.seen.append((reading.status, reading.state))
            if reading.next is _Next.TERMINAL and self.outcome.final_state is None:
                self.outcome.final_state = reading.final_state
                self.outcome.result_url = reading.result_url
            if reading.next is not _Next.CONTINUE:
                self._ended.set()
        return reading

    def _fetch_result(self) -> None:
        if self.outcome.result_url is not None and self.outcome.final_state == "succeeded":
            self.outcome.result_status = self._client.get(self.outcome.result_url).status_code


def status_url_from(response: httpx.Response) -> str:
    """Status URL of a create answer: Operation-Location, else Location, else body ``name``.

    Relative URLs are resolved against the create request's URL.
    """
    for header in ("Operation-Location", "Location"):
        if header in response.headers:
            return str(response.url.join(response.headers[header]))
    payload = _json(response.content)
    if isinstance(payload, dict) and isinstance(payload.get("name"), str):
        return str(response.url.join(f"/v1/{payload['name']}"))
    raise ValueError(f"no status URL in the {response.status_code} answer to {response.url}")


def _lose_id(status_url: str) -> str:
    """Change the last character of the job id (last path segment): e-1001 -> e-100x."""
    url = httpx.URL(status_url)
    head, _, job_id = url.path.rpartition("/")
    mangled = job_id[:-1] + ("y" if job_id.endswith("x") else "x")
    return str(url.copy_with(path=f"{head}/{mangled}"))


def _move_to(status_url: str, other_base_url: str) -> str:
    """Same path and query on another host (prod job id polled on staging)."""
    other = httpx.URL(other_base_url)
    return str(httpx.URL(status_url).copy_with(scheme=other.scheme, host=other.host, port=other.port))


def poll_status(
    client: httpx.Client,
    status_url: str,
    *,
    interval: float = 0.1,
    max_polls: int = 60,
    timeout: float = 10.0,
    gives_up_after: int | None = None,
    extra_polls_after_terminal: int = 0,
    honour_retry_after: bool = True,
    concurrent: bool = False,
    conditional: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
) -> PollOutcome:
    """Poll an existing status URL; see poll_job for the options."""
    settings = _PollSettings(
        interval=interval,
        max_polls=max_polls,
        timeout=timeout,
        gives_up_after=gives_up_after,
        extra_polls_after_terminal=extra_polls_after_terminal,
        honour_retry_after=honour_retry_after,
        concurrent=concurrent,
        conditional=conditional,
        headers=headers,
    )
    return _Poller(client, status_url, settings).run()


def poll_job(
    client: httpx.Client,
    create_url: str,
    *,
    lost_id: bool = False,
    wrong_env_url: str | None = None,
    **poll_options: Any,
) -> PollOutcome:
    """POST ``create_url``, then poll the job's status URL until it ends.

    ``poll_options`` are those of ``poll_status`` (interval, max_polls, timeout, ...).
    Healthy behaviour: stop on a terminal state (status word, 303, Google ``done``),
    on 404 or 410; retry 5xx; wait ``interval`` (or Retry-After, if longer) between
    polls; stop after ``max_polls`` polls or ``timeout`` seconds; send If-None-Match
    with the last ETag (``conditional``) and reuse the stored body on 304.

    Client faults:
      * ``lost_id`` - poll a mangled job id (last character changed), so the server 404s.
      * ``wrong_env_url`` - poll the same path on another base URL (e.g. staging).
      * ``gives_up_after=N`` - stop after N polls even if the job is still running.
      * ``extra_polls_after_terminal=N`` - keep polling N more times after the end.
      * ``honour_retry_after=False`` - ignore Retry-After and poll every ``interval``.
      * ``concurrent=True`` - fire a poll every ``interval`` without waiting for the
        previous answer (like setInterval); stop once an answer is terminal and every
        in-flight request is done.  ``seen`` is then in order of arrival.
    """
    created = client.post(create_url)
    created.raise_for_status()
    status_url = status_url_from(created)
    if lost_id:
        status_url = _lose_id(status_url)
    if wrong_env_url is not None:
        status_url = _move_to(status_url, wrong_env_url)
    return poll_status(client, status_url, **poll_options)



@dataclass(frozen=True)
class ClientOptions:
    """How a scenario's poller behaves; defaults are a healthy, browser-like poller."""

    interval: float = 0.1
    max_polls: int = 60
    timeout: float = 10.0
    lost_id: bool = False
    wrong_env: bool = False
    """Poll the staging SampleAPI instead of the one that created the job."""
    gives_up_after: int | None = None
    extra_polls_after_terminal: int = 0
    honour_retry_after: bool = True
    concurrent: bool = False
    conditional: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers on every poll (e.g. Cache-Control: no-cache to bypass a cache)."""

    def status_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for poll_status (everything but the URL faults)."""
        return {
            "interval": self.interval,
            "max_polls": self.max_polls,
            "timeout": self.timeout,
            "gives_up_after": self.gives_up_after,
            "extra_polls_after_terminal": self.extra_polls_after_terminal,
            "honour_retry_after": self.honour_retry_after,
            "concurrent": self.concurrent,
            "conditional": self.conditional,
            "headers": self.headers,
        }
