"""Turns a mitmproxy flow into the core's plain Observation. The only place that reads flows."""

from __future__ import annotations

import time

from mitmproxy import http

from .observation import BODY_EXCERPT_LIMIT, Headers, Observation

RAW_BODY_LIMIT = 4 * 1024 * 1024
"""Compressed bodies larger than this are not decoded at all: status documents are small."""

_TEXTUAL = ("json", "text", "javascript", "xml")


def observation_from_flow(flow: http.HTTPFlow) -> Observation:
    request, response = flow.request, flow.response
    request_ts = request.timestamp_start
    if response is not None:
        response_ts = response.timestamp_end or response.timestamp_start or time.time()
        if flow.is_replay == "response" and flow.live:
            response_ts = time.time()  # a replayed response keeps its recorded times; it arrives now
        response_headers = Headers.of(response.headers.items(multi=True))
        status: int | None = response.status_code
    else:
        response_ts = (flow.error.timestamp if flow.error else None) or request.timestamp_end or request_ts
        response_headers, status = Headers(), None
    peer = flow.client_conn.peername
    har = flow.metadata.get("har") if isinstance(flow.metadata.get("har"), dict) else {}
    observation = Observation(
        flow_id=flow.id,
        method=request.method,
        url=request.pretty_url,
        status=status,
        request_headers=Headers.of(request.headers.items(multi=True)),
        response_headers=response_headers,
        request_ts=request_ts,
        response_ts=response_ts,
        client=har.get("connection") or (f"{peer[0]}:{peer[1]}" if peer else None),
        served_from="browser-cache" if har.get("_fromCache") else None,  # a HAR entry kept in a flow file
    )
    if response is not None:
        observation.with_body_loader(lambda: _body_excerpt(response))
    return observation


def _body_excerpt(response: http.Response) -> tuple[bytes, bool]:
    """Decoded body, at most BODY_EXCERPT_LIMIT bytes; nothing for binary, streamed or huge bodies."""
    raw = response.raw_content
    if not raw:
        return b"", False
    content_type = response.headers.get("content-type", "").lower()
    if content_type and not any(t in content_type for t in _TEXTUAL):
        return b"", False
    if len(raw) > RAW_BODY_LIMIT:
        return raw[:BODY_EXCERPT_LIMIT], True
    content = response.get_content(strict=False) or b""
    return content[:BODY_EXCERPT_LIMIT], len(content) > BODY_EXCERPT_LIMIT
