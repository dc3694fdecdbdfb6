"""go-vcr cassettes (Go SDK test suites: Linode, Scaleway, Azure for Go, ...) into Observations.

Format version 1: `interactions[]` with `request.url`, `response.status` as text ("200 OK"),
`response.code` and `response.duration` ("" or a Go duration such as "273.31643ms", or integer
nanoseconds). Version 2 (go-vcr v2 to v4) adds `id`, `proto`, `content_length` and more, which are
not needed. No recorded instants: the response Date header is the clock, and the duration spaces
request from response (and exchanges within one Date second); without Date, synthetic spacing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pollwatch.core.cache import parse_http_date
from pollwatch.core.observation import Observation
from pollwatch.sources.base import (
    Clock,
    Malformed,
    Reader,
    Recording,
    read_interactions,
    body_bytes,
    duration as checked_duration,
    mapping,
    multi_headers,
    response_body,
    status_code,
    text,
)

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def recognises(document: Any, syntax: str) -> bool:
    """`interactions` whose requests name a `url` (VCR.py's name a `uri`); format 2 is go-vcr's alone."""
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        return False
    for interaction in document["interactions"][:20]:
        request = interaction.get("request") if isinstance(interaction, dict) else None
        if isinstance(request, dict):
            return "url" in request and "uri" not in request
    return document.get("version") == 2


def read_govcr(path: Path, document: Any) -> Recording:
    return read_interactions(path, document, "interactions", "go-vcr cassette", "go-vcr", _observation)


def _observation(interaction: Any, index: int, clock: Clock) -> Observation:
    interaction = mapping(interaction, "interaction")
    request = mapping(interaction["request"], "request")
    response = mapping(interaction["response"], "response")
    headers = multi_headers(response.get("headers"), "response.headers")
    code = response.get("code")
    status = status_code(code if code else response.get("status"), "response.code")
    raw, _ = body_bytes(response.get("body"), "response.body")
    body, truncated = response_body(raw, headers)
    duration = go_duration(response.get("duration"), "response.duration")
    request_ts, response_ts = clock.at(parse_http_date(headers.get("date")), duration)
    return Observation(
        flow_id=f"interaction-{index}", method=text(request["method"], "request.method").upper(),
        url=text(request["url"], "request.url"), status=status,
        request_headers=multi_headers(request.get("headers"), "request.headers"), response_headers=headers,
        body=body, body_truncated=truncated, request_ts=request_ts, response_ts=response_ts,
    )


def go_duration(value: Any, what: str) -> float:
    """Seconds in a Go duration: "1h2m3.5s", "273.31643ms", "0s", "" (none), or integer nanoseconds."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Malformed(f"{what} is a {type(value).__name__}, not a duration")
    if not isinstance(value, str):
        return checked_duration(max(float(value) * 1e-9, 0.0), what)
    spec = value.strip().lstrip("+")
    if spec == "0":
        return 0.0
    parts = _PART.findall(spec)
    if not parts or "".join(n + u for n, u in parts) != spec:
        raise Malformed(f"{what} {value[:40]!r} is not a duration")
    return checked_duration(sum(float(number) * _UNITS[unit] for number, unit in parts), what)


READER = Reader(kind="go-vcr", syntaxes=frozenset({"yaml", "json"}), recognises=recognises, read=read_govcr)
