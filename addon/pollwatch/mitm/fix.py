"""The fix switch (`--set pollwatch_fix=no-store`): try the usual cure for stale status without
changing the server. Status responses of tracked jobs reach the client with
`Cache-Control: no-store` and without `ETag`, `Last-Modified` and `Expires`, and polls lose their
conditional request headers, so no cache (the browser's included) can answer a poll with an old
state. mitmproxy's own `anticache` strips only the request side.

It runs after `PollWatch` in the same hook, so findings are computed on the original response;
the flow is commented, and the session's settings record that the fix was on.
"""

from __future__ import annotations

from mitmproxy import http

from pollwatch.mitm.addon import PollWatch

VALIDATORS = ("etag", "last-modified", "expires")
CONDITIONALS = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since")
NOTE = "modified by pollwatch_fix=no-store: Cache-Control: no-store; ETag, Last-Modified, Expires removed"


class FixSwitch:
    """Rewrites the cache headers of tracked jobs' status exchanges when `pollwatch_fix` is set."""

    def __init__(self, watch: PollWatch) -> None:
        self.watch = watch

    def request(self, flow: http.HTTPFlow) -> None:
        if self.watch.fix != "no-store":
            return
        with self.watch.guard():
            if self.watch.polls_a_job(flow):
                for name in CONDITIONALS:
                    flow.request.headers.pop(name, None)

    def response(self, flow: http.HTTPFlow) -> None:
        if self.watch.fix != "no-store" or flow.response is None:
            return
        with self.watch.guard():
            if flow.request.method.upper() in ("GET", "HEAD") and self.watch.job_key_of(flow) is not None:
                no_store(flow.response)
                flow.comment = "\n".join(filter(None, [flow.comment, NOTE]))


def no_store(response: http.Response) -> None:
    """The response as a cache must never reuse it."""
    response.headers["cache-control"] = "no-store"
    for name in VALIDATORS:
        response.headers.pop(name, None)
