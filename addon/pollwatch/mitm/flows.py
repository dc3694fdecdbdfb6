"""Turns a mitmproxy flow into the core's plain Observation. The only place that reads flows."""

from __future__ import annotations

import re
import time

from mitmproxy import http

from pollwatch.core.observation import Headers, Observation, clean_text
from pollwatch.mitm.decoding import decode_excerpt

_TEXTUAL = re.compile("json|text|javascript|xml")


_ORIGINS: dict[tuple[bytes, bytes, bytes | None, str, int], str] = {}
_ORIGINS_KEPT = 1024


def request_url(request: http.Request) -> str:
    """The URL the client asked for. Its scheme://host:port part is worked out once per Host header
    and kept: mitmproxy's pretty_host/pretty_url parse the header again on every call, a large part
    of pollwatch's cost per request."""
    data = request.data  # its raw fields: the properties decode them again on every read
    if data.method == b"CONNECT" or not data.path.startswith(b"/"):  # authority form, "*", odd targets
        return _full_url(request)
    path = request.path
    key = (data.scheme, data.authority, raw_header(data.headers.fields, b"host"), data.host, data.port)
    origin = _ORIGINS.get(key)
    if origin is None:
        full = _full_url(request)
        if not full.endswith(path):
            return full
        if len(_ORIGINS) >= _ORIGINS_KEPT:
            _ORIGINS.clear()
        origin = _ORIGINS[key] = full[: len(full) - len(path)]
    return origin + path


def raw_header(fields: tuple[tuple[bytes, bytes], ...], name: bytes) -> bytes | None:
    """Header `name` (lower-case bytes) from mitmproxy's raw fields, repeated fields joined by ", "
    as mitmproxy's own lookup joins them (a second Host header must change the answer); cheaper
    than that lookup, which lower-cases every name first. None when it is absent."""
    size = len(name)
    found = [value for field, value in fields if len(field) == size and field.lower() == name]
    return found[0] if len(found) == 1 else b", ".join(found) if found else None


def _full_url(request: http.Request) -> str:
    """IPv6 hosts in brackets (mitmproxy's pretty_url omits them)."""
    host = request.pretty_host
    if ":" not in host:
        return request.pretty_url
    default = (request.scheme == "https" and request.port == 443) or (request.scheme == "http" and request.port == 80)
    return f"{request.scheme}://[{host}]{'' if default else f':{request.port}'}{request.path}"


def headers_of(fields: tuple[tuple[bytes, bytes], ...]) -> Headers:
    """`Headers.of(headers.items(multi=True))`, from mitmproxy's raw fields: a strict UTF-8 decode
    (C, no check needed after it) for the usual headers, and mitmproxy's surrogate-escaped text
    made clean, as `Headers.of` does, for the rare ones that are not UTF-8."""
    headers = Headers()
    for raw_name, raw_value in fields:
        try:
            name, value = raw_name.decode("utf-8").lower(), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            name = clean_text(raw_name.decode("utf-8", "surrogateescape")).lower()
            value = clean_text(raw_value.decode("utf-8", "surrogateescape"))
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def observation_from_flow(flow: http.HTTPFlow) -> Observation:
    """The flow as the core sees it. Headers and body are decoded only when a rule asks for them:
    most proxied flows are not job traffic, and for those the URL and status decide. What they are
    decoded from is taken now (mitmproxy's raw header fields and raw body, immutable values): a
    live flow is handled after its hook (mitm/batch.py), and addons after pollwatch's (the fix
    switch, a later script, a client replay) may change the flow meanwhile."""
    request, response = flow.request, flow.response
    request_ts = request.timestamp_start
    request_fields = request.data.headers.fields
    if response is not None:
        response_ts = response.timestamp_end or response.timestamp_start or time.time()
        if flow.is_replay == "response" and flow.live:
            response_ts = time.time()  # a replayed response keeps its recorded times; it arrives now
        data = response.data
        status: int | None = data.status_code
        fields, raw = data.headers.fields, data.content
    else:
        response_ts = (flow.error.timestamp if flow.error else None) or request.timestamp_end or request_ts
        status, fields, raw = None, (), None
    peer = flow.client_conn.peername
    metadata = flow.metadata
    har = metadata.get("har") if metadata and isinstance(metadata.get("har"), dict) else {}
    observation = Observation(
        flow_id=flow.id,
        method=request.method,
        url=request_url(request),
        status=status,
        request_headers=lambda: headers_of(request_fields),
        response_headers=(lambda: headers_of(fields)) if response is not None else None,
        request_ts=request_ts,
        response_ts=response_ts,
        client=har.get("connection") or (f"{peer[0]}:{peer[1]}" if peer else None),
        served_from="browser-cache" if har.get("_fromCache") else None,  # a HAR entry kept in a flow file
    )
    if response is not None:
        observation.with_body_loader(lambda obs: _body_excerpt(raw, obs.response_headers))
    return observation


def _body_excerpt(raw: bytes | None, headers: Headers) -> tuple[bytes, bool]:
    """Decoded body, at most BODY_EXCERPT_LIMIT bytes; nothing for binary bodies or ones that do
    not decode. Read from the raw bytes through the bounded decoder, never through mitmproxy's
    `content` (which inflates in full and keeps the result in its decode cache). `headers` are
    the response's as Headers: a lookup in mitmproxy's multidict scans and lower-cases them all."""
    if not raw:
        return b"", False
    content_type = headers.get("content-type", "").lower()
    if content_type and not _TEXTUAL.search(content_type):
        return b"", False
    return decode_excerpt(raw, headers.get("content-encoding", "")) or (b"", False)
