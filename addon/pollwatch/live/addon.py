"""The job view inside mitmproxy: a virtual host of the proxy, the way mitmproxy serves its
onboarding page on mitm.it. A request through the proxy to `http://pollwatch.localhost/`
(`pollwatch_ui_host`) is answered by the proxy itself; it never goes upstream and is never
watched as job traffic. Any client of the proxy can open it, mitmweb's users too.

The answer is computed in a worker thread (it reads SQLite), so the event loop never waits on
it; only that one request waits. After each flow the watcher handled, the job it touched is
copied onto the board, the view's source for what the tracker knows right now (with
`pollwatch_batch` on, up to 0.1 s later: see mitm/batch.py).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from mitmproxy import ctx, exceptions, http

from pollwatch.core.records import Update
from pollwatch.core.tracking import Tracker
from pollwatch.live.app import Reply, ViewApp, json_reply
from pollwatch.live.board import Board
from pollwatch.live.data import LiveData

log = logging.getLogger("pollwatch")

DEFAULT_HOST = "pollwatch.localhost"


class Watch(Protocol):
    """What the view needs of the watcher (mitm/addon.py's PollWatch)."""

    session: Any  # its `id` names the session the view shows
    tracker: Tracker

    def on_handled(self, listener: Callable[[http.HTTPFlow, Update], None]) -> None: ...

    def unwatch(self, flow: http.HTTPFlow) -> None: ...

    def guard(self) -> AbstractContextManager[None]: ...


def view_url(host: str) -> str:
    return f"http://{host}/"


class LiveView:
    """Serves the live job view on `pollwatch_ui_host`; register it after the watcher."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.board = Board()
        self.data = LiveData(self.board, watch.session.id)
        self.app = ViewApp(self.data)
        self.host = DEFAULT_HOST
        self.enabled = True  # pollwatch_ui, kept here: reading an option copies its value
        self._executor: ThreadPoolExecutor | None = None
        watch.on_handled(self._note)

    def load(self, loader: Any) -> None:
        loader.add_option("pollwatch_ui", bool, True, "Serve the live job view to clients of this proxy at "
                          "http://<pollwatch_ui_host>/ (and its JSON API under /api/).")
        loader.add_option("pollwatch_ui_host", str, DEFAULT_HOST, "Host name of the live job view; requests "
                          "through the proxy to this host are answered by pollwatch and never sent upstream.")

    def configure(self, updated: set[str]) -> None:
        if "pollwatch_ui" in updated:
            self.enabled = ctx.options.pollwatch_ui
        if "pollwatch_ui_host" in updated:
            host = ctx.options.pollwatch_ui_host.strip().lower().rstrip(".")
            if not host or any(c in host for c in "/?# "):
                raise exceptions.OptionsError(f"pollwatch_ui_host: {ctx.options.pollwatch_ui_host!r} is not a host name")
            self.host = host
        if "pollwatch_db" in updated:
            self.data.db = getattr(ctx.options, "pollwatch_db", None) or None

    def running(self) -> None:
        if not self.enabled:
            return
        with self.watch.guard():
            log.info(f"[pollwatch] live job view: {view_url(self.host)} (open it in a browser that uses "
                     f"this proxy{_proxy_address()})")

    def done(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def serves(self, flow: http.HTTPFlow) -> bool:
        """A live request to the view's host not answered yet (like mitmproxy's own app hosts)."""
        if not (self.enabled and flow.live and flow.response is None and flow.error is None):
            return False
        request, wanted = flow.request, self.host.encode()
        if (self.host not in request.data.host.lower() and wanted not in request.data.authority.lower()
                and not any(wanted in value.lower() for _, value in request.headers.fields)):
            return False  # cheap refusal for every other request: not even a header value holds the name
        return self.host in _names(request)

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """A coroutine that answers the view's own requests, None for every other request (mitmproxy
        awaits what a hook returns: an `async def` hook would cost each request a coroutine)."""
        return self._answer(flow) if self.serves(flow) else None

    async def _answer(self, flow: http.HTTPFlow) -> None:
        self.watch.unwatch(flow)
        reply: Reply | None = None
        with self.watch.guard():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pollwatch-view")
            reply = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.app.respond, flow.request.method, flow.request.path)
        if reply is None:  # the error is counted and reported with pollwatch's own
            reply = json_reply(500, {"error": "internal error in the job view (see the proxy's log)"})
        flow.response = http.Response.make(reply.status, reply.body, dict(reply.headers))

    def _note(self, flow: http.HTTPFlow, update: Update) -> None:
        """Copy the job a flow touched onto the board, with the snapshot the tracker made of it
        (the watcher has just handled the flow)."""
        if not self.enabled or update.job is None:
            return
        with self.watch.guard():
            job = self.watch.tracker.jobs.get(update.job.key)
            if job is not None:
                self.board.note(job, update.job)


def _names(request: http.Request) -> set[str]:
    """The hosts a request names, the URL's and the Host header's: a request naming the view either
    way must not go upstream (where `pollwatch.localhost` may well resolve to this machine)."""
    return {name.lower().rstrip(".") for name in (request.host, request.pretty_host)}


def _proxy_address() -> str:
    """`: 127.0.0.1:8080` once the proxy listens, else nothing."""
    try:
        addresses = ctx.master.addons.get("proxyserver").listen_addrs()
    except AttributeError:
        return ""
    return ": " + ", ".join(f"{a[0]}:{a[1]}" for a in addresses) if addresses else ""
