"""Live flows handled in small batches instead of one by one in their hooks.

Inside the proxy, pollwatch's code for one flow runs between mitmproxy's own work on other flows,
which pushes pollwatch's code and data out of the CPU caches each time: the same code costs about
twice as much there as in a loop over flows. Handling the flows that arrived within a short
window (at most `size` flows, at most SECONDS after the first) together, in one callback of the
event loop, keeps those caches warm and halves pollwatch's CPU per flow
(scripts/bench_overhead.py). No flow waits for it: the hook only queues the flow and returns.

A flow is handled in its own hook, as before, when batching is off (`size` 1), before the proxy
runs (tests, `mitmdump -nr` replays), for flows that are not live, and while mitmproxy writes flows
to a file (`-w`): its writer saves each flow right after pollwatch's hook, and the file must hold
pollwatch's marks and comments. Whoever reads what the tracker knows calls `flush()` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mitmproxy import http

from pollwatch.mitm.flows import Seen, seen_now

SECONDS = 0.1
"""The longest a live flow waits before pollwatch handles it (its findings are logged then)."""
DEFAULT_SIZE = 64
CHUNK = 16
"""Flows handled per callback of the event loop: the loop gets back to the traffic between chunks,
so a batch never holds it up for more than about a millisecond."""



class FlowBatch:
    """Queues live flows for `handle`, which gets them in arrival order."""

    def __init__(self, handle: Callable[[list[Seen]], None]) -> None:
        self._handle = handle
        self.size = DEFAULT_SIZE
        self.recording = False  # mitmproxy writes flows to a file: handle each in its hook
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Seen] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon: asyncio.Handle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """The proxy runs: from now on live flows may wait for their batch."""
        self._loop = loop

    def offer(self, flow: http.HTTPFlow) -> bool:
        """Queue `flow` and say True, or say False when it must be handled now (after every flow
        queued before it, handled here first so that order holds)."""
        loop = self._loop
        if loop is None or self.size <= 1 or self.recording or not flow.live:
            if self._pending:
                self.flush()
            return False
        pending = self._pending
        pending.append(seen_now(flow))
        if len(pending) == 1 and self._soon is None:
            self._timer = loop.call_later(SECONDS, self.drain)
        elif len(pending) >= self.size and self._soon is None:
            self._soon = loop.call_soon(self.drain)  # not in this flow's hook: the flow goes on at once
        return True

    def drain(self) -> None:
        """Handle the oldest CHUNK queued flows, and the rest in later callbacks (the event loop
        calls this when the batch is full or its time is up)."""
        for handle in (self._timer, self._soon):
            if handle is not None:
                handle.cancel()  # the one running now, or one that need not run any more
        self._timer = self._soon = None
        chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
        if self._pending and self._loop is not None:
            self._soon = self._loop.call_soon(self.drain)
        if chunk:
            self._handle(chunk)

    def flush(self) -> None:
        """Handle every queued flow now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        pending, self._pending = self._pending, []
        if pending:
            self._handle(pending)

    def stop(self) -> None:
        """The proxy stops: handle what is queued, and queue nothing more."""
        self.flush()
        self._loop = None

    def __len__(self) -> int:
        return len(self._pending)
