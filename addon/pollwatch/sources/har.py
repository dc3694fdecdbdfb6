"""HAR 1.2 (browser devtools, mitmproxy's export, Polly.js recordings) into Observations.

Every entry has its own start time and duration, so the clock is the recording's. Polly.js adds
`_id`/`_order` (one request repeated, as a poll is, shares the `_id`), binary bodies as base64
(`encoding`), hex (`_isBinary`, Polly < 6) or, for content-encoded responses, a JSON list of
chunks; other `_` fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from pollwatch.core.observation import Headers, Observation
from pollwatch.errors import ReadError
from pollwatch.sources.base import (
    Malformed,
    Reader,
    Recording,
    bounded,
    each,
    mapping,
    duration,
    parse_time,
    response_body,
    status_code,
    text,
)


def recognises(document: Any, syntax: str) -> bool:
    return isinstance(document, dict) and "log" in document


def read_har(path: Path, document: Any) -> Recording:
    log = document.get("log")
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ReadError(f"{path}: not a HAR file (no log.entries list)")
    observations = each(path, entries, "HAR entry", _observation)
    return Recording(path, "har", observations, synthetic_times=False)


def _observation(entry: Any, index: int) -> Observation:
    entry = mapping(entry, "entry")
    request, response = mapping(entry["request"], "request"), mapping(entry["response"], "response")
    started = parse_time(entry["startedDateTime"], "startedDateTime")
    if started is None:
        raise Malformed("startedDateTime is empty")
    total = duration(max(float(entry.get("time") or 0), 0.0) / 1000, "time")
    response_headers = _headers(response.get("headers"), "response.headers")
    body, truncated = _content(mapping(response.get("content"), "response.content", optional=True), response_headers)
    return Observation(
        flow_id=_flow_id(entry, index),
        method=text(request["method"], "request.method"), url=text(request["url"], "request.url"),
        status=status_code(response.get("status"), "response.status"),  # HAR writes 0 for failed requests
        request_headers=_headers(request.get("headers"), "request.headers"), response_headers=response_headers,
        body=body, body_truncated=truncated,
        request_ts=started, response_ts=started + total,
        client=str(entry["connection"]) if entry.get("connection") else None,
        served_from="browser-cache" if entry.get("_fromCache") else None,
    )


def _flow_id(entry: dict[str, Any], index: int) -> str:
    """Polly's `_id` names the request, `_order` its repetition; other HARs have neither."""
    if entry.get("_id") and entry.get("_order") is not None:
        return f"{entry['_id']}#{entry['_order']}"
    return str(entry.get("_id") or entry.get("pageref", "") + f"#{index}")


def _headers(value: Any, what: str) -> Headers:
    if value is None:
        return Headers()
    if not isinstance(value, list):
        raise Malformed(f"{what} is a {type(value).__name__}, not a list")
    pairs = []
    for number, header in enumerate(value):
        header = mapping(header, f"{what}[{number}]")
        pairs.append((text(header["name"], f"{what}[{number}].name"), text(header["value"], f"{what}[{number}].value")))
    return Headers.of(pairs)


def _content(content: dict[str, Any], headers: Headers) -> tuple[bytes, bool]:
    """The response body: plain text as it is (HAR keeps bodies decoded); base64 or hex bytes
    (Polly may keep them as they came, compressed) decoded per Content-Encoding."""
    body = content.get("text") or ""
    encoding = content.get("encoding") or ("hex" if content.get("_isBinary") else None)
    if encoding is None and headers.get("content-encoding") and isinstance(body, str) and body.startswith('["'):
        try:  # Polly < 6 kept content-encoded chunks in hex without saying so
            return response_body(b"".join(bytes.fromhex(chunk) for chunk in json.loads(body)), headers)
        except (ValueError, TypeError):
            pass
    if encoding not in ("base64", "hex"):
        return bounded(text(body, "response.content.text").encode("utf-8", "replace"))
    decode = base64.b64decode if encoding == "base64" else bytes.fromhex
    try:
        raw = b"".join(decode(text(chunk, "response.content.text")) for chunk in _chunks(body))
    except (binascii.Error, ValueError):
        raise Malformed(f"response.content.text is not valid {encoding}") from None
    return response_body(raw, headers)


def _chunks(body: Any) -> list[Any]:
    """Polly keeps a content-encoded response as a JSON list of its chunks."""
    if isinstance(body, list):
        return body
    if isinstance(body, str) and body.startswith("["):
        try:
            chunks = json.loads(body)
        except ValueError:
            return [body]
        return chunks if isinstance(chunks, list) else [body]
    return [body]


READER = Reader(kind="har", syntaxes=frozenset({"json"}), recognises=recognises, read=read_har)
