"""Turns a mitmproxy flow into the core's plain Observation. The only place that reads flows."""

from __future__ import annotations

import time
import zlib

from mitmproxy import http

from pollwatch.core.observation import BODY_EXCERPT_LIMIT, Headers, Observation

COMPRESSED_BODY_LIMIT = 256 * 1024
"""br/zstd bodies larger than this are not decoded at all: status documents are small."""

_TEXTUAL = ("json", "text", "javascript", "xml")


def request_url(request: http.Request) -> str:
    """The URL the client asked for; IPv6 hosts in brackets (mitmproxy's pretty_url omits them)."""
    host = request.pretty_host
    if ":" not in host:
        return request.pretty_url
    default = (request.scheme == "https" and request.port == 443) or (request.scheme == "http" and request.port == 80)
    return f"{request.scheme}://[{host}]{'' if default else f':{request.port}'}{request.path}"


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
        url=request_url(request),
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
    """Decoded body, at most BODY_EXCERPT_LIMIT bytes; nothing for binary or streamed bodies.
    gzip/deflate bodies are decompressed only as far as the excerpt needs (a status document is
    small; a large download matched by job id must not be inflated on the proxy's event loop)."""
    raw = response.raw_content
    if not raw:
        return b"", False
    content_type = response.headers.get("content-type", "").lower()
    if content_type and not any(t in content_type for t in _TEXTUAL):
        return b"", False
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _inflate_excerpt(raw, encoding)
    if encoding in ("", "identity"):
        return raw[:BODY_EXCERPT_LIMIT], len(raw) > BODY_EXCERPT_LIMIT
    if len(raw) > COMPRESSED_BODY_LIMIT:
        return b"", True  # br/zstd cannot be cut short here; too big to be a status document
    content = response.get_content(strict=False) or b""
    return content[:BODY_EXCERPT_LIMIT], len(content) > BODY_EXCERPT_LIMIT


def _inflate_excerpt(raw: bytes, encoding: str) -> tuple[bytes, bool]:
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        content = inflater.decompress(raw, BODY_EXCERPT_LIMIT + 1)
    except zlib.error:
        try:  # "deflate" is sometimes sent without the zlib header
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            content = inflater.decompress(raw, BODY_EXCERPT_LIMIT + 1)
        except zlib.error:
            return b"", False
    return content[:BODY_EXCERPT_LIMIT], len(content) > BODY_EXCERPT_LIMIT
