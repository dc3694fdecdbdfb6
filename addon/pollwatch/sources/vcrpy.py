"""VCR.py cassettes (Python: requests, httpx, aiohttp, urllib3 test suites) into Observations.

Two layouts: today's response `status: {code, message}` with `body: {string}`, and the older
httpx one (vcrpy < 5) with `status_code` and `content`. Neither records when an exchange happened,
so the response Date header is the clock, and without one exchanges are spaced synthetically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollwatch.core.cache import parse_http_date
from pollwatch.core.observation import Observation
from pollwatch.sources.base import (
    Clock,
    Reader,
    Recording,
    read_interactions,
    body_bytes,
    mapping,
    multi_headers,
    response_body,
    status_code,
    text,
)


def recognises(document: Any, syntax: str) -> bool:
    """Any document with `interactions`; go-vcr's (which also has them) is claimed before this."""
    return isinstance(document, dict) and "interactions" in document and "http_interactions" not in document


def read_cassette(path: Path, document: Any) -> Recording:
    return read_interactions(path, document, "interactions", "VCR.py cassette", "cassette", _observation)


def _observation(interaction: Any, index: int, clock: Clock) -> Observation:
    interaction = mapping(interaction, "interaction")
    request = mapping(interaction["request"], "request")
    response = mapping(interaction["response"], "response")
    headers = multi_headers(response.get("headers"), "response.headers")
    if "status_code" in response:  # httpx layout of vcrpy < 5
        status = status_code(response["status_code"], "response.status_code")
        raw, charset = body_bytes(response.get("content"), "response.content")
    else:
        recorded = response["status"]
        status = status_code(mapping(recorded, "response.status")["code"] if not isinstance(recorded, (int, str))
                             else recorded, "response.status")
        raw, charset = body_bytes(response.get("body"), "response.body")
    body, truncated = response_body(raw, headers, charset)
    request_ts, response_ts = clock.at(parse_http_date(headers.get("date")))
    return Observation(
        flow_id=f"interaction-{index}", method=text(request["method"], "request.method").upper(),
        url=text(request["uri"], "request.uri"), status=status,
        request_headers=multi_headers(request.get("headers"), "request.headers"), response_headers=headers,
        body=body, body_truncated=truncated, request_ts=request_ts, response_ts=response_ts,
    )


READER = Reader(kind="cassette", syntaxes=frozenset({"yaml", "json"}), recognises=recognises, read=read_cassette)
