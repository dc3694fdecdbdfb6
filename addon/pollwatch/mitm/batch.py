"""Live flows handled in small batches instead of one by one in their hooks (opt-in:
`pollwatch_batch`).

Inside the proxy, pollwatch's code for one flow runs between mitmproxy's own work on other flows,
which pushes pollwatch's code and data out of the CPU caches each time: the same code costs about
1.6 times as much there as in a loop over flows (67-70 against 109-116 µs per poll). Handling the
flows that arrived within a short window together, in callbacks of the event loop, keeps those
caches warmer: a quarter to a half less time in pollwatch's code per poll, about 5% of the proxy's
CPU with every request a poll (scripts/bench_overhead.py --batched). The hook takes the flow's
observation (what the flow was when the hook ran) and queues it; the flow goes on at once. It is
not the default: handling a chunk delays the requests that arrive meanwhile (the client's p99
latency about 40% longer on a load of job polls), and findings come up to SECONDS later.

A flow is handled in its own hook, as before, when batching is off (`size` 1), before the proxy
runs (tests), for flows that are not live (`mitmdump -nr` replays), while mitmproxy writes flows
to a file (`-w`: its writer saves each flow right after pollwatch's hook, and the file must hold
pollwatch's marks and comments), while the fix switch rewrites responses (it asks the tracker
about every exchange) and while origin checks are on (a check copies the request as it is in the
hook). Whoever reads what the tracker knows calls `flush()` first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from mitmproxy import http

from pollwatch.core.observation import Observation

SECONDS = 0.1
"""The longest a live flow waits before pollwatch handles it (its findings are logged then)."""
DEFAULT_SIZE = 1
"""Each flow handled in its own hook, unless `pollwatch_batch` says otherwise (64 is a good size)."""
CHUNK = 16
"""Flows handled per callback of the event loop (and every flow that has waited SECONDS): the loop
gets back to the traffic between chunks, so a batch holds it up for about a millisecond."""


class FlowBatch:
    """Queues live flows for `handle`, which gets them one at a time in arrival order and says
    whether it changed the flow (marked or commented it); `announce` gets the changed flows of
    each callback."""

    def __init__(self, handle: Callable[[http.HTTPFlow, Observation], bool],
                 announce: Callable[[list[http.HTTPFlow]], None]) -> None:
        self._handle = handle
        self._announce = announce
        self.size = DEFAULT_SIZE
        self.in_hooks = False  # -w or the fix switch: every flow handled in its hook
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[float, http.HTTPFlow, Observation]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The proxy runs: from now on live flows may wait for their batch."""
        self._loop = loop

    def offer(self, flow: http.HTTPFlow, observation: Observation) -> bool:
        """Queue the flow and say True, or say False when it must be handled now (after every flow
        queued before it, handled here first so that order holds)."""
        loop = self._loop
        if loop is None or self.size <= 1 or self.in_hooks or not flow.live:
            if self._pending:
                self.flush()
            return False
        pending = self._pending
        pending.append((time.monotonic(), flow, observation))
        if self._soon is None:
            if self._timer is None:
                self._timer = loop.call_later(SECONDS, self.drain)
            if len(pending) >= self.size:
                self._soon = loop.call_soon(self.drain)  # not in this flow's hook: the flow goes on at once
        return True

    def drain(self) -> None:
        """Handle the oldest CHUNK queued flows and every flow that has waited SECONDS, the rest in
        later callbacks (the event loop calls this when the batch is full or its time is up)."""
        self._cancel()
        due = time.monotonic() - SECONDS
        self._run(lambda count, queued_at: count < CHUNK or queued_at <= due)
        if self._pending and self._loop is not None and self._soon is None:
            self._soon = self._loop.call_soon(self.drain)

    def flush(self) -> None:
        """Handle every queued flow now."""
        self._cancel()
        self._run(lambda count, queued_at: True)

    def stop(self) -> None:
        """The proxy stops: handle what is queued, and queue nothing more."""
        self.flush()
        self._loop = None

    def __len__(self) -> int:
        return len(self._pending)

    def _run(self, more: Callable[[int, float], bool]) -> None:
        """Handle queued flows from the oldest while `more(handled so far, when it was queued)`. One
        flow is taken off the queue at a time, so a flush from inside a handler (a reader of the
        tracker) goes on in arrival order."""
        pending, changed, count = self._pending, [], 0
        while pending and more(count, pending[0][0]):
            _, flow, observation = pending.popleft()
            count += 1
            if self._handle(flow, observation):
                changed.append(flow)
        if changed:
            self._announce(changed)

    def _cancel(self) -> None:
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()  # the one running now, or one that need not run any more
        self._timer = self._soon = None
