"""Recordings as mitmproxy flows, for `pollwatch sanitize` and `pollwatch scan`.

Any input (mitmproxy flow file, HAR, VCR cassette) is loaded as flows, with what the flows cannot
carry reported as hits (never copied); and each flow is rebuilt from an allow-list of its parts
(request line, headers, body, response, timestamps, comment) so nothing else (certificates, server
addresses, metadata, websocket messages) can ride along. Writing them out is writing.py's part.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mitmproxy import connection, http
from mitmproxy import flow as mflow
from mitmproxy import io as mio
from mitmproxy.utils.strutils import always_str

from pollwatch.core.observation import Observation, clean_text
from pollwatch.core.redact import REDACTED
from pollwatch.files import open_input
from pollwatch.share.documents import document_hits
from pollwatch.share.secrets import Detectors, Hit, preview
from pollwatch.sources.base import body_bytes, each, mapping, text
from pollwatch.sources.readers import load_document, read

HAR_EXTRAS = ("_fromCache", "connection", "pageref")
"""HAR entry fields the analysis reads that flows have no place for; carried to HAR output."""
HAR_CONSUMED = {"request": ("method", "url", "httpVersion", "headers", "postData.text", "postData.mimeType"),
                "response": ("status", "statusText", "httpVersion", "headers", "content.text", "content.encoding",
                             "content.mimeType")}
CASSETTE_CONSUMED = {"request": ("method", "uri", "body", "headers"),
                     "response": ("status", "headers", "body.string")}
UNKNOWN_PEER = ("0.0.0.0", 0)
"""Flow files need a client address; recordings without one (cassettes) get this one for all."""


# --- recordings as flows ----------------------------------------------------------------------

@dataclass
class Loaded:
    """One input file as flows, what the flows cannot carry (reported, never copied), and the
    HAR fields worth keeping for each flow."""

    path: Path
    kind: str
    flows: list[http.HTTPFlow]
    extras: list[dict[str, Any]]
    dropped: list[Hit] = field(default_factory=list)
    skipped: int = 0  # non-HTTP flows (TCP, UDP, DNS)


def load(path: Path, detectors: Detectors) -> Loaded:
    """Read a recording with the analysis' own reader (format, errors, timestamps), then as flows."""
    recording = read(path)
    if recording.kind == "har":
        return _load_har(path, recording.observations, detectors)
    if recording.kind == "cassette":
        return _load_cassette(path, recording.observations, detectors)
    if recording.kind == "flows":
        return _load_flows(path, detectors)
    return _load_document_only(path, recording.kind, detectors)


FLOW_KINDS = frozenset({"flows", "har", "cassette"})
"""Recording kinds that load as flows (and so can be sanitized); the others are only scanned."""


def _load_document_only(path: Path, kind: str, detectors: Detectors) -> Loaded:
    """Ruby VCR, go-vcr, Betamax: no flows, every field of the file scanned as it is written."""
    loaded = Loaded(path, kind, [], [])
    loaded.dropped = document_hits(_jsonable(load_document(path)), detectors, str(path), None, None, kind)
    return loaded


def _load_flows(path: Path, detectors: Detectors) -> Loaded:
    """The file's HTTP flows as mitmproxy loads them (`read` has checked every one already)."""
    loaded = Loaded(path, "flows", [], [])
    with open_input(path) as f:
        for item in mio.FlowReader(f).stream():
            if not isinstance(item, http.HTTPFlow):
                loaded.skipped += 1
                continue
            index = len(loaded.flows)
            loaded.flows.append(item)
            loaded.extras.append({})
            loaded.dropped += _flow_leftovers(item, index, str(path), detectors)
    return loaded


def _flow_leftovers(flow: http.HTTPFlow, index: int, file: str, detectors: Detectors) -> list[Hit]:
    """Secrets in the parts of a flow that sanitized flows do not carry (metadata, websocket
    messages, trailers)."""
    leftovers: dict[str, Any] = {"metadata": _jsonable(flow.metadata)}
    if flow.websocket is not None:
        leftovers["websocket"] = [always_str(m.content, "utf-8", "replace") for m in flow.websocket.messages]
    for side, message in (("request", flow.request), ("response", flow.response)):
        if message is not None and message.trailers:
            leftovers[f"{side}_trailers"] = [{"name": k, "value": v} for k, v in message.trailers.items(multi=True)]
    return document_hits(leftovers, detectors, file, index, flow.id, "flow")


def _load_har(path: Path, observations: list, detectors: Detectors) -> Loaded:
    document = load_document(path)  # as `read` parsed it: entries and their types are checked
    loaded = Loaded(path, "har", [], [])
    clients = _Enumerator()

    def add(pair: tuple[dict[str, Any], Observation], index: int) -> None:
        entry, obs = pair
        request, response = entry["request"], entry["response"]
        post = request.get("postData") if isinstance(request.get("postData"), dict) else {}  # else scanned below
        content = mapping(response.get("content"), "response.content", optional=True)
        body = text(content.get("text") or "", "response.content.text")
        connection_id = entry.get("connection")
        flow = _make_flow(
            method=obs.method, url=obs.url, version=text(request.get("httpVersion") or "", "request.httpVersion"),
            request_headers=_har_headers(request),
            request_body=text_bytes(text(post.get("text") or "", "request.postData.text")),
            status=obs.status, reason=text(response.get("statusText") or "", "response.statusText"),
            response_headers=_har_headers(response),
            response_body=_b64(body) if content.get("encoding") == "base64" else text_bytes(body),
            request_ts=obs.request_ts, response_ts=obs.response_ts,
            peer=("127.0.0.1", clients.number(str(connection_id))) if connection_id else None,
            error=text(response.get("_error") or "no response recorded", "response._error"))
        loaded.flows.append(flow)
        loaded.extras.append({k: entry[k] for k in HAR_EXTRAS if k in entry})
        loaded.dropped += _userinfo_hit(obs.url, str(path), index)
        rest = _without(entry, HAR_CONSUMED)
        loaded.dropped += _har_cookie_hits(rest, str(path), index)
        loaded.dropped += document_hits(rest, detectors, str(path), index, None, "har")

    each(path, list(zip(document["log"]["entries"], observations)), "HAR entry", add)
    rest = {k: v for k, v in document["log"].items() if k != "entries"}
    loaded.dropped += document_hits(rest, detectors, str(path), None, None, "har log")
    return loaded


def _har_headers(message: dict[str, Any]) -> list[tuple[str, str]]:
    """HTTP/2 pseudo-headers (`:authority`, `:path`) repeat the URL and are no headers in a flow."""
    pairs = [(text(h["name"], "header name"), text(h["value"], "header value")) for h in message.get("headers") or []]
    return [(name, value) for name, value in pairs if not name.startswith(":")]


def _har_cookie_hits(entry: dict[str, Any], file: str, index: int) -> list[Hit]:
    """HAR repeats cookies in `cookies` lists; every value there is as secret as the header's
    (and is taken out of the entry, whose generic walk would also blank their paths and domains)."""
    hits = []
    for side in ("request", "response"):
        for cookie in (entry.get(side) or {}).pop("cookies", None) or []:
            value = cookie.get("value") if isinstance(cookie, dict) else None
            if isinstance(value, str) and value not in ("", REDACTED):
                hits.append(Hit(file, index, None, f"har $.{side}.cookies {cookie.get('name')}", "sensitive-cookie",
                                preview(value)))
    return hits


def _load_cassette(path: Path, observations: list, detectors: Detectors) -> Loaded:
    document = load_document(path)  # as `read` parsed it (bounded YAML): interactions are checked
    loaded = Loaded(path, "cassette", [], [])

    def add(pair: tuple[dict[str, Any], Observation], index: int) -> None:
        interaction, obs = pair
        request, response = interaction["request"], interaction["response"]
        status = response.get("status") or {}
        body, _ = body_bytes(response.get("body"), "response.body")  # as the analysis reads it
        flow = _make_flow(
            method=obs.method, url=obs.url, version="HTTP/1.1",
            request_headers=_vcr_pairs(request.get("headers")), request_body=_vcr_body(request.get("body")),
            status=obs.status, reason=str(status.get("message") or "") if isinstance(status, dict) else "",
            response_headers=_vcr_pairs(response.get("headers")),
            response_body=body, request_ts=obs.request_ts, response_ts=obs.response_ts, peer=None,
            error="no response recorded")
        loaded.flows.append(flow)
        loaded.extras.append({})
        loaded.dropped += _userinfo_hit(obs.url, str(path), index)
        loaded.dropped += document_hits(_without(interaction, CASSETTE_CONSUMED), detectors, str(path), index,
                                        None, "cassette")

    each(path, list(zip(document["interactions"], observations)), "interaction", add)
    return loaded


def _make_flow(*, method: str, url: str, version: str, request_headers: list[tuple[str, str]],
               request_body: bytes, status: int | None, reason: str, response_headers: list[tuple[str, str]],
               response_body: bytes, request_ts: float, response_ts: float, peer: tuple[str, int] | None,
               error: str) -> http.HTTPFlow:
    """A flow as mitmproxy would have recorded it; bodies are decoded, so content-encoding goes."""
    client = connection.Client(peername=peer or UNKNOWN_PEER, sockname=UNKNOWN_PEER, timestamp_start=request_ts)
    request = http.Request.make(method, ascii_url(url), b"", make_headers(request_headers))
    flow = http.HTTPFlow(client, connection.Server(address=(request.host, request.port)))
    request.http_version = _http_version(version)
    _set_decoded(request, request_body)
    request.timestamp_start = request.timestamp_end = request_ts
    flow.request = request
    if status is None:
        flow.error = mflow.Error(error, timestamp=response_ts)
        return flow
    response = http.Response.make(status, b"", make_headers(response_headers))
    response.http_version, response.reason = request.http_version, reason
    _set_decoded(response, _decoded(response_body, response.headers.get("content-encoding")))
    response.timestamp_start = response.timestamp_end = response_ts
    flow.response = response
    return flow


PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))


def ascii_url(url: str) -> str:
    """`url` as mitmproxy can make a request of it, as a browser sends it: an international host
    in IDNA (`xn--`), any other character that is not printable ASCII percent-encoded."""
    if url.isascii() and " " not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_host = quote(host, safe="")
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = ((quote(userinfo, safe=PRINTABLE_ASCII) + "@" if userinfo else "")
              + (f"[{ascii_host}]" if ":" in ascii_host else ascii_host) + (f":{parts.port}" if parts.port else ""))
    rest = url[url.index(parts.netloc) + len(parts.netloc):] if parts.netloc else url
    return f"{parts.scheme}://{netloc}{quote(rest, safe=PRINTABLE_ASCII)}"


def make_headers(pairs: Iterable[tuple[str, str]]) -> http.Headers:
    return http.Headers([(text_bytes(k), text_bytes(v)) for k, v in pairs])


def text_bytes(value: str | bytes) -> bytes:
    """Text as the bytes it stands for: bytes that were not UTF-8 come back (mitmproxy keeps them as
    surrogate escapes); any other lone surrogate (a `\\ud800` escape in JSON) becomes U+FFFD, as
    the analysis reads it."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return clean_text(value).encode("utf-8")


def _set_decoded(message: http.Message, body: bytes) -> None:
    """Store a decoded body: no content-encoding, a Content-Length that matches."""
    message.headers.pop("content-encoding", None)
    if body or "content-length" in message.headers:
        message.content = body


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """Cassettes may keep compressed bytes; HAR and most cassettes keep them decoded."""
    if not encoding:
        return body
    from mitmproxy.net import encoding as codecs
    try:
        return codecs.decode(body, encoding)  # type: ignore[return-value]
    except ValueError:
        return body


def _http_version(text: str) -> str:
    lowered = text.lower()
    return "HTTP/2.0" if "2" in lowered else "HTTP/3" if "3" in lowered else "HTTP/1.1"


def _vcr_pairs(headers: Any) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, values in (headers or {}).items()
            for v in (values if isinstance(values, list) else [values])]


def _vcr_body(body: Any) -> bytes:
    if isinstance(body, dict):
        body = body.get("string")
    if body is None:
        return b""
    return text_bytes(body if isinstance(body, bytes) else str(body))


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _without(document: dict[str, Any], consumed: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A copy of a HAR entry / cassette interaction without the parts that became the flow."""
    rest = _jsonable(document)  # a copy with text keys: YAML keys may be numbers, dates or null
    for section, paths in consumed.items():
        for dotted in paths:
            node = rest.get(section)
            *parents, last = dotted.split(".")
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
    for key in ("startedDateTime", "time", "timings", "cache", "serverIPAddress", *HAR_EXTRAS):
        rest.pop(key, None)
    return rest


def _userinfo_hit(url: str, file: str, index: int) -> list[Hit]:
    """Flows have no place for URL userinfo: it is dropped, and said so."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return []
    return [Hit(file, index, None, "request.url userinfo", "url-userinfo", preview(netloc.rsplit("@", 1)[0]))]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


class _Enumerator:
    """Stable small numbers for values in order of appearance (HAR connection ids, client IPs)."""

    def __init__(self) -> None:
        self._seen: dict[object, int] = {}

    def number(self, value: object) -> int:
        return self._seen.setdefault(value, len(self._seen) + 1)


# --- rebuilding flows from an allow-list of their parts -----------------------------------------

class ClientAddresses:
    """Client addresses are personal data: loopback stays, others become 10.0.x.y by order of
    appearance (ports kept: the analysis tells pollers apart by connection)."""

    def __init__(self) -> None:
        self._numbers = _Enumerator()

    def peer(self, peer: tuple[str, int] | None) -> tuple[str, int]:
        if not peer or tuple(peer) == UNKNOWN_PEER:
            return UNKNOWN_PEER
        host, port = peer[0], peer[1]
        try:
            if ipaddress.ip_address(host).is_loopback:
                return host, port
        except ValueError:
            pass
        n = self._numbers.number(host)
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}", port


def fresh_copy(source: http.HTTPFlow, clients: ClientAddresses) -> http.HTTPFlow:
    """A new flow with only the parts a recording needs; connections carry no certificates,
    server addresses or TLS details; metadata, websocket messages and trailers stay behind."""
    client = connection.Client(peername=clients.peer(source.client_conn.peername), sockname=UNKNOWN_PEER,
                               timestamp_start=source.client_conn.timestamp_start or source.request.timestamp_start)
    flow = http.HTTPFlow(client, connection.Server(address=(source.request.host, source.request.port)))
    flow.id = source.id
    flow.request = source.request.copy()
    flow.request.trailers = None
    if source.response is not None:
        flow.response = source.response.copy()
        flow.response.trailers = None
    if source.error is not None:
        flow.error = mflow.Error(source.error.msg, source.error.timestamp)
    flow.comment, flow.marked = source.comment, source.marked
    return flow
