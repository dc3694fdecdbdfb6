"""`pollwatch sanitize` and `pollwatch scan`: recordings made safe to share, and the proof.

Every input (mitmproxy flow file, HAR, VCR cassette) becomes mitmproxy flows; each flow is
rebuilt from an allow-list of its parts (request line, headers, body, response, timestamps, comment)
so nothing else (certificates, server addresses, metadata, websocket messages) can ride along;
`FlowRedactor` walks every part that can carry a secret. Sanitize replaces what it finds, scan only
reports it, through the same walk and the same detectors. Sanitize then scans its own output and
refuses to finish if anything is left.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

import yaml
from mitmproxy import connection, http
from mitmproxy import flow as mflow
from mitmproxy import io as mio
from mitmproxy.utils.strutils import always_bytes, always_str

from .adapter import observation_from_flow
from .detection import ID_HEADERS
from .detectors import Detectors, Hit, Rules, preview, redact_document
from .readers import ReadError, expand, read
from .redact import REDACTED, key_words
from .tracking import Tracker

TEXTUAL_TYPES = ("json", "text", "javascript", "xml", "html", "x-www-form-urlencoded", "csv", "yaml",
                 "graphql", "multipart/form-data", "ecmascript")
VERBATIM_HEADERS = frozenset({"content-length", "date", "expires", "last-modified", "age", "retry-after"})
"""Numbers and dates: nothing to redact or pseudonymize."""
VALIDATOR_HEADERS = frozenset({"etag", "if-none-match", "if-match", "content-md5", "digest", "content-digest",
                               "repr-digest", "x-ms-content-crc64"})
"""Hashes and validators look random but are not secrets; replacing them would make every ETag
equal (and raise etag-reused-across-states). Pseudonymized only."""
URL_HEADERS = frozenset({"location", "content-location", "operation-location", "azure-asyncoperation",
                         "azure-asyncnotification", "referer", "origin", "link"})
HAR_EXTRAS = ("_fromCache", "connection", "pageref")
"""HAR entry fields the analysis reads that flows have no place for; carried to HAR output."""
HAR_CONSUMED = {"request": ("method", "url", "httpVersion", "headers", "postData.text", "postData.mimeType"),
                "response": ("status", "statusText", "httpVersion", "headers", "content.text", "content.encoding",
                             "content.mimeType")}
CASSETTE_CONSUMED = {"request": ("method", "uri", "body", "headers"),
                     "response": ("status", "headers", "body.string")}
SQLITE_MAGIC = b"SQLite format 3\x00"
UNKNOWN_PEER = ("0.0.0.0", 0)
"""Flow files need a client address; recordings without one (cassettes) get this one for all."""


class SanitizeError(Exception):
    """Sanitizing cannot go on; one line for the user."""


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
    return _load_flows(path, detectors)


def _load_flows(path: Path, detectors: Detectors) -> Loaded:
    loaded = Loaded(path, "flows", [], [])
    with path.open("rb") as f:
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
    return _document_hits(leftovers, detectors, file, index, flow.id, "flow")


def _load_har(path: Path, observations: list, detectors: Detectors) -> Loaded:
    document = json.loads(path.read_bytes())
    loaded = Loaded(path, "har", [], [])
    clients = _Enumerator()
    for index, (entry, obs) in enumerate(zip(document["log"]["entries"], observations)):
        request, response = entry["request"], entry["response"]
        post = request.get("postData") or {}
        content = response.get("content") or {}
        text = content.get("text") or ""
        body = _b64(text) if content.get("encoding") == "base64" else text.encode("utf-8", "surrogateescape")
        connection_id = entry.get("connection")
        flow = _make_flow(
            method=request["method"], url=request["url"], version=request.get("httpVersion") or "",
            request_headers=_har_headers(request),
            request_body=(post.get("text") or "").encode("utf-8", "surrogateescape"),
            status=obs.status, reason=response.get("statusText") or "",
            response_headers=_har_headers(response),
            response_body=body, request_ts=obs.request_ts, response_ts=obs.response_ts,
            peer=("127.0.0.1", clients.number(connection_id)) if connection_id else None,
            error=(response.get("_error") or "no response recorded"))
        loaded.flows.append(flow)
        loaded.extras.append({k: entry[k] for k in HAR_EXTRAS if k in entry})
        loaded.dropped += _userinfo_hit(request["url"], str(path), index)
        rest = _without(entry, HAR_CONSUMED)
        loaded.dropped += _har_cookie_hits(rest, str(path), index)
        loaded.dropped += _document_hits(rest, detectors, str(path), index, None, "har")
    rest = {k: v for k, v in document["log"].items() if k != "entries"}
    loaded.dropped += _document_hits(rest, detectors, str(path), None, None, "har log")
    return loaded


def _har_headers(message: dict[str, Any]) -> list[tuple[str, str]]:
    """HTTP/2 pseudo-headers (`:authority`, `:path`) repeat the URL and are no headers in a flow."""
    return [(h["name"], h["value"]) for h in message.get("headers", []) if not h["name"].startswith(":")]


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
    document = yaml.safe_load(path.read_bytes())
    loaded = Loaded(path, "cassette", [], [])
    for index, (interaction, obs) in enumerate(zip(document["interactions"], observations)):
        request, response = interaction["request"], interaction["response"]
        status = response.get("status") or {}
        body = (response.get("body") or {}).get("string") or b""
        flow = _make_flow(
            method=str(request["method"]).upper(), url=str(request["uri"]), version="HTTP/1.1",
            request_headers=_vcr_pairs(request.get("headers")), request_body=_vcr_body(request.get("body")),
            status=obs.status, reason=str(status.get("message") or "") if isinstance(status, dict) else "",
            response_headers=_vcr_pairs(response.get("headers")),
            response_body=body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogateescape"),
            request_ts=obs.request_ts, response_ts=obs.response_ts, peer=None, error="no response recorded")
        loaded.flows.append(flow)
        loaded.extras.append({})
        loaded.dropped += _userinfo_hit(str(request["uri"]), str(path), index)
        loaded.dropped += _document_hits(_without(interaction, CASSETTE_CONSUMED), detectors, str(path), index,
                                         None, "cassette")
    return loaded


def _make_flow(*, method: str, url: str, version: str, request_headers: list[tuple[str, str]],
               request_body: bytes, status: int | None, reason: str, response_headers: list[tuple[str, str]],
               response_body: bytes, request_ts: float, response_ts: float, peer: tuple[str, int] | None,
               error: str) -> http.HTTPFlow:
    """A flow as mitmproxy would have recorded it; bodies are decoded, so content-encoding goes."""
    client = connection.Client(peername=peer or UNKNOWN_PEER, sockname=UNKNOWN_PEER, timestamp_start=request_ts)
    request = http.Request.make(method, url, b"", _make_headers(request_headers))
    flow = http.HTTPFlow(client, connection.Server(address=(request.host, request.port)))
    request.http_version = _http_version(version)
    _set_decoded(request, request_body)
    request.timestamp_start = request.timestamp_end = request_ts
    flow.request = request
    if status is None:
        flow.error = mflow.Error(error, timestamp=response_ts)
        return flow
    response = http.Response.make(status, b"", _make_headers(response_headers))
    response.http_version, response.reason = request.http_version, reason
    _set_decoded(response, _decoded(response_body, response.headers.get("content-encoding")))
    response.timestamp_start = response.timestamp_end = response_ts
    flow.response = response
    return flow


def _make_headers(pairs: Iterable[tuple[str, str]]) -> http.Headers:
    return http.Headers([(always_bytes(k, "utf-8", "surrogateescape"), always_bytes(v, "utf-8", "surrogateescape"))
                         for k, v in pairs])


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
    return body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogateescape")


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def _without(document: dict[str, Any], consumed: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A copy of a HAR entry / cassette interaction without the parts that became the flow."""
    rest = copy.deepcopy(document)
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


def _document_hits(document: Any, detectors: Detectors, file: str, index: int | None, flow_id: str | None,
                   prefix: str) -> list[Hit]:
    hits: list[Hit] = []

    def report(path: str, rule: str, value: object) -> None:
        hits.append(Hit(file, index, flow_id, f"{prefix} {path}", rule, preview(value)))

    redact_document(document, detectors, report)
    hits += [Hit(file, index, flow_id, f"{prefix} {path}", span.rule, preview(text[span.start:span.end]))
             for path, text in _strings(document) for span in detectors.forbidden(text)]
    return hits


def _strings(document: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every key and string in a JSON-like document, with its path."""
    if isinstance(document, dict):
        for k, v in document.items():
            yield f"{path}.{k}", str(k)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(document, list):
        for i, v in enumerate(document):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(document, str | bytes):
        yield path, always_str(document, "utf-8", "replace")


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


# --- the ids an investigation needs -------------------------------------------------------------

def known_ids(flows: list[http.HTTPFlow], detectors: Detectors) -> frozenset[str]:
    """Job ids (what pollwatch's own core recognises), request/operation ids (id headers) and
    id-named JSON values: kept (never mistaken for secrets) and, with --pseudonymize, replaced."""
    tracker = Tracker()
    ids: set[str] = set()
    for flow in flows:
        update = tracker.observe(observation_from_flow(flow))
        if update is not None and update.poll is not None:
            ids.update(update.poll.ids.values())
    for job in tracker.jobs.values():
        ids.update([job.job_id, *job.aliases, *job.operation_ids.values()])
    for flow in flows:
        for message in (flow.request, flow.response):
            if message is not None:
                ids.update(v for k, v in message.headers.items(multi=True) if is_id_header(k))
                ids.update(_json_ids(message, detectors))
    return frozenset(i for i in ids if i and len(i) <= 200)


def is_id_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in ID_HEADERS or (lowered.endswith(("request-id", "correlation-id", "requestid", "operation-id",
                                                        "trace-id"))
                                     and "session" not in lowered)


def is_id_key(name: str) -> bool:
    words = key_words(name)
    return bool(words) and words[-1] in ("id", "ids", "uuid", "guid")


def _json_ids(message: http.Message, detectors: Detectors) -> Iterator[str]:
    document = _json_of(message)
    stack: list[tuple[str, Any]] = [("$", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if detectors.sensitive_key(k, f"{path}.{k}"):
                    continue
                if is_id_key(k) and isinstance(v, str | int) and not isinstance(v, bool):
                    yield str(v)
                stack.append((f"{path}.{k}", v))
        elif isinstance(node, list):
            stack += [(path, v) for v in node]


def _json_of(message: http.Message) -> Any:
    content = message.get_content(strict=False) or b""
    if content.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


# --- pseudonyms ---------------------------------------------------------------------------------

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_HEX = set("0123456789abcdef-")


class Pseudonymizer:
    """Consistent stand-ins for ids and hostnames: HMAC-SHA256 under a random key that exists only
    in memory for one export, so the same id maps to the same pseudonym everywhere in the file
    (correlation survives) and nobody, the sender included, can map it back afterwards.

    Pseudonyms keep the shape of what they replace (digits stay digits, hex stays hex, separators
    stay), so status-URL templates, UUID formats and JSON numbers still parse."""

    def __init__(self, ids: Iterable[str], hosts: Iterable[str], key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._ids = {i.lower() for i in ids if i}
        self._made: dict[str, str] = {}
        self._taken: set[str] = set()
        self._hosts: dict[str, str] = {}
        text_ids = sorted({i for i in self._ids if _safe_in_text(i)}, key=len, reverse=True)
        alternatives = [*map(re.escape, text_ids), _UUID]
        self._id_pattern = re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)
        names = sorted({h.lower() for h in hosts if h and self.host(h) != h.lower()}, key=len, reverse=True)
        self._host_pattern = (re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-]|\.\w)",
                                         re.IGNORECASE) if names else None)

    @property
    def count(self) -> int:
        """Distinct ids and hosts replaced so far."""
        return len(self._made) + sum(1 for k, v in self._hosts.items() if k != v)

    def id(self, value: str) -> str:
        """The pseudonym of one id, in the letter case of this occurrence."""
        if value == REDACTED:
            return value
        lowered = value.lower()
        made = self._made.get(lowered)
        if made is None:
            made = self._new(lowered)
            self._made[lowered] = made
        return "".join(p.upper() if o.isupper() else p for o, p in zip(value, made)) + made[len(value):]

    def _new(self, lowered: str) -> str:
        for attempt in range(64):
            candidate = self._derive(lowered, attempt)
            if candidate != lowered and candidate not in self._taken and candidate not in self._ids:
                self._taken.add(candidate)
                return candidate
        raise SanitizeError(f"cannot pseudonymize id {lowered!r} uniquely")

    def _derive(self, lowered: str, attempt: int) -> str:
        stream = hmac.new(self._key, f"{attempt}\x00{lowered}".encode(), hashlib.sha256).digest()
        while len(stream) < len(lowered) + 8:
            stream += hmac.new(self._key, stream, hashlib.sha256).digest()
        hexish = len(lowered) >= 8 and set(lowered) <= _HEX
        numeric = lowered.isdigit()
        out = []
        for position, (char, byte) in enumerate(zip(lowered, stream)):
            if char.isdigit():
                out.append(str(1 + byte % 9) if numeric and position == 0 else str(byte % 10))
            elif char.isalnum():
                out.append("abcdef"[byte % 6] if hexish else chr(97 + byte % 26))
            else:
                out.append(char)
        out += [str(b % 10) for b in stream[len(lowered):len(lowered) + attempt // 8]]  # tiny ids: widen
        return "".join(out)

    def host(self, host: str) -> str:
        """Loopback stays; other addresses become 10.x.y.z; names keep their last two labels
        (the registrable domain, roughly: `tenant.vault.azure.net` -> `h3f09c2a1.azure.net`)."""
        lowered = host.lower().strip("[]")
        if lowered not in self._hosts:
            self._hosts[lowered] = self._new_host(lowered)
        return self._hosts[lowered]

    def _new_host(self, lowered: str) -> str:
        digest = hmac.new(self._key, b"host\x00" + lowered.encode(), hashlib.sha256).digest()
        try:
            address = ipaddress.ip_address(lowered)
        except ValueError:
            labels = lowered.split(".")
            if lowered == "localhost" or (len(labels) == 2 and labels[-1] != "") or not lowered:
                return lowered
            return ".".join([f"h{digest[:4].hex()}", *labels[-2:]]) if len(labels) > 2 else f"h{digest[:4].hex()}"
        if address.is_loopback or address.is_unspecified:
            return lowered
        return f"10.{digest[0]}.{digest[1]}.{digest[2]}"

    def host_port(self, value: str) -> str:
        host, colon, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        return f"{self.host(host)}{colon}{port}"

    def text(self, text: str) -> str:
        """Known ids, UUIDs and the recording's hostnames replaced wherever they stand alone."""
        if not text:
            return text
        text = self._id_pattern.sub(lambda m: self.id(m.group(0)), text)
        if self._host_pattern is not None:
            text = self._host_pattern.sub(lambda m: self.host(m.group(0)), text)
        return text

    def url(self, url: str) -> str:
        """A URL or path: host, path segments and query values that are ids, then the rest as text."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.text(url)
        netloc = parts.netloc
        if parts.hostname:
            netloc = netloc.replace(parts.hostname, self.host(parts.hostname), 1) if parts.hostname in netloc \
                else netloc
        path = "/".join(self._token(s, quote) for s in parts.path.split("/"))
        query = "&".join(self._pair(p) for p in parts.query.split("&")) if parts.query else ""
        return urlunsplit((parts.scheme, netloc, path, query, self.text(parts.fragment)))

    def _pair(self, pair: str) -> str:
        name, eq, value = pair.partition("=")
        return f"{name}{eq}{self._token(value, quote_plus)}" if eq else pair

    def _token(self, raw: str, requote: Callable[[str], str]) -> str:
        plain = unquote_plus(raw) if requote is quote_plus else unquote(raw)
        if plain.lower() in self._ids:
            return requote(self.id(plain))
        return self.text(raw)

    def value(self, value: str) -> str:
        """A value that may be an id as a whole, a URL, or text."""
        if value.lower() in self._ids:
            return self.id(value)
        if "/" in value and not any(c.isspace() for c in value):
            return self.url(value)
        return self.text(value)

    def document(self, node: Any, key: str = "") -> Any:
        """A JSON document: id-named fields wholesale, other strings as values."""
        if isinstance(node, dict):
            return {k: self.document(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self.document(v, key) for v in node]
        if isinstance(node, str):
            return self.id(node) if is_id_key(key) and node else self.value(node)
        if isinstance(node, int) and not isinstance(node, bool) and (is_id_key(key) or str(node) in self._ids):
            return int(self.id(str(abs(node))))
        return node


def _safe_in_text(value: str) -> bool:
    """Ids distinctive enough to replace wherever they appear (not `1` or `2026`)."""
    has_letter, has_digit = any(c.isalpha() for c in value), any(c.isdigit() for c in value)
    return (len(value) >= 4 and has_letter and has_digit) or (value.isdigit() and len(value) >= 6) or (
        len(value) >= 8 and set(value) <= _HEX and has_digit)


# --- one flow: every place a secret can hide ----------------------------------------------------

class FlowRedactor:
    """Walks every part of a flow that can carry a secret and replaces what the detectors find
    (sanitize), or only reports it (scan: run on a throwaway copy). Hits say where."""

    def __init__(self, detectors: Detectors, *, file: str, pseudonyms: Pseudonymizer | None = None,
                 scan: bool = False, flow_ids: bool = True) -> None:
        self.detectors = detectors
        self.file = file
        self.flow_ids = flow_ids  # False for HAR and cassettes: their flows' ids are made up here
        self.pseudonyms = pseudonyms
        self.scan = scan
        self._hits: list[Hit] = []
        self._where: tuple[int, str | None] = (0, None)

    def run(self, flow: http.HTTPFlow, index: int) -> list[Hit]:
        self._hits, self._where = [], (index, flow.id if self.flow_ids else None)
        if self.scan:
            self._forbidden(flow)
        self._request(flow.request)
        if flow.response is not None:
            self._response(flow.response)
        if flow.error is not None:
            flow.error.msg = self._text("flow.error", flow.error.msg)
        flow.comment = self._text("flow.comment", flow.comment)
        flow.server_conn.address = (flow.request.host, flow.request.port)
        return self._hits

    def _hit(self, location: str, rule: str, value: object) -> None:
        self._hits.append(Hit(self.file, self._where[0], self._where[1], location, rule, preview(value)))

    # request and response

    def _request(self, request: http.Request) -> None:
        path, question, query = request.path.partition("?")
        path = self._text("request.path", path, pseudonymize=False)
        query = "&".join(self._query_pair(p) for p in query.split("&")) if question else ""
        request.path = self._pseudo(f"{path}{question}{query}", "url")
        if self.pseudonyms is not None:
            request.host = self.pseudonyms.host(request.host)
            if request.authority:
                request.authority = self.pseudonyms.host_port(request.authority)
        request.headers = self._headers("request", request.headers)
        self._body("request", request)

    def _response(self, response: http.Response) -> None:
        response.reason = self._text("response.reason", response.reason)
        response.headers = self._headers("response", response.headers)
        self._body("response", response)

    def _query_pair(self, pair: str) -> str:
        raw_name, eq, raw_value = pair.partition("=")
        name, value = unquote_plus(raw_name), unquote_plus(raw_value)
        if self.detectors.sensitive_param(name) and value and value != REDACTED:
            self._hit(f"request.query {name}", "sensitive-param", value)
            return f"{raw_name}={REDACTED}"
        new = self._text(f"request.query {name}", value, pseudonymize=False)
        return f"{raw_name}{eq}{quote_plus(new, safe='/:')}" if new != value else pair

    # headers

    def _headers(self, side: str, headers: http.Headers) -> http.Headers:
        fields = []
        for raw_name, raw_value in headers.fields:
            name, value = always_str(raw_name, "utf-8", "surrogateescape"), always_str(raw_value, "utf-8", "surrogateescape")
            fields.append((name, self._header(side, name, value)))
        return _make_headers(fields)

    def _header(self, side: str, name: str, value: str) -> str:
        location = f"{side}.header {name}"
        if self.detectors.sensitive_header(name):
            new = redact_header_value(name, value)
            if new != value:
                self._hit(location, "sensitive-header", value)
            return new
        lowered = name.lower()
        if lowered in VERBATIM_HEADERS:
            return value
        if lowered not in VALIDATOR_HEADERS:
            value = self._text(location, value, pseudonymize=False)
        if lowered == "host":
            return self._pseudo(value, "host")
        if is_id_header(lowered):
            return self._pseudo(value, "id")
        return self._pseudo(value, "url" if lowered in URL_HEADERS else "text")

    # bodies

    def _body(self, side: str, message: http.Message) -> None:
        if not message.raw_content:
            return
        content = message.get_content(strict=False) or b""
        if message.headers.get("content-encoding") and content == message.raw_content:  # undecodable
            new = self._binary(f"{side}.body", content)
        else:
            new = self._content(side, message.headers.get("content-type", ""), content)
        message.headers.pop("content-encoding", None)
        if new != message.raw_content:
            message.content = new

    def _content(self, side: str, raw_type: str, content: bytes) -> bytes:
        if not content:
            return content
        content_type = raw_type.lower()
        if "x-www-form-urlencoded" in content_type:
            return self._form(side, content.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        if "multipart/form-data" in content_type:
            return self._multipart(side, raw_type, content)
        if "json" in content_type or (not content_type and content.lstrip()[:1] in (b"{", b"[")):
            redacted = self._json(side, content)
            if redacted is not None:
                return redacted
        if _textual(content_type, content):
            text = content.decode("utf-8", "surrogateescape")
            return self._text(f"{side}.body", text).encode("utf-8", "surrogateescape")
        return self._binary(f"{side}.body", content)

    def _binary(self, location: str, content: bytes) -> bytes:
        """Bytes no detector can read are not shared: an image or archive may hold anything."""
        if not self.scan:
            self._hit(location, "binary-body-dropped", f"{len(content)} bytes")
        return b""

    def _json(self, side: str, content: bytes) -> bytes | None:
        try:
            document = json.loads(content)
        except ValueError:
            return None

        def report(path: str, rule: str, value: object) -> None:
            self._hit(f"{side}.json {path}", rule, value)

        new = redact_document(document, self.detectors, report)
        if self.pseudonyms is not None:
            new = self.pseudonyms.document(new)
        if new == document:
            return content
        indent = 2 if b"\n" in content.strip() else None
        compact = indent is None and b'": ' not in content and b", " not in content
        return json.dumps(new, ensure_ascii=False, indent=indent,
                          separators=(",", ":") if compact else None).encode("utf-8")

    def _form(self, side: str, text: str) -> str:
        pairs = []
        for pair in text.split("&"):
            raw_name, eq, raw_value = pair.partition("=")
            name, value = unquote_plus(raw_name), unquote_plus(raw_value)
            if self.detectors.sensitive_param(name) and value and value != REDACTED:
                self._hit(f"{side}.form {name}", "sensitive-param", value)
                new = REDACTED
            else:
                new = self._pseudo(self._text(f"{side}.form {name}", value, pseudonymize=False), "value")
            pairs.append(f"{raw_name}{eq}{quote_plus(new)}" if new != value else pair)
        return "&".join(pairs)

    def _multipart(self, side: str, content_type: str, content: bytes) -> bytes:
        match = re.search(r'(?i)boundary="?([^";]+)"?', content_type)
        if not match:
            return self._binary(f"{side}.body", content)
        delimiter = b"--" + match.group(1).encode()
        pieces = content.split(delimiter)
        out = [pieces[0]]
        for piece in pieces[1:]:
            head, sep, body = piece.partition(b"\r\n\r\n")
            if piece.startswith(b"--") or not sep:
                out.append(piece)
                continue
            body, tail = (body[:-2], b"\r\n") if body.endswith(b"\r\n") else (body, b"")
            out.append(head + sep + self._part(side, head.decode("utf-8", "replace"), body) + tail)
        return delimiter.join(out)

    def _part(self, side: str, head: str, body: bytes) -> bytes:
        name_match = re.search(r'(?i)\bname="([^"]*)"', head)
        name = name_match.group(1) if name_match else ""
        location = f"{side}.multipart {name}"
        part_type = (re.search(r"(?im)^content-type:\s*([^\r\n]+)", head) or [None, ""])[1].lower()
        if not _textual(part_type, body):
            return self._binary(location, body)
        text = body.decode("utf-8", "surrogateescape")
        if self.detectors.sensitive_param(name) and text and text != REDACTED:
            self._hit(location, "sensitive-param", text)
            return REDACTED.encode()
        return self._pseudo(self._text(location, text, pseudonymize=False), "value").encode("utf-8", "surrogateescape")

    # text

    def _text(self, location: str, text: str, *, pseudonymize: bool = True) -> str:
        new, replaced = self.detectors.redact_text(text) if text else (text, [])
        for span, original in replaced:
            self._hit(f"{location} [{span.detail}]" if span.detail else location, span.rule, original)
        return self._pseudo(new, "text") if pseudonymize else new

    def _pseudo(self, value: str, kind: str) -> str:
        p = self.pseudonyms
        if p is None or not value:
            return value
        return {"url": p.url, "host": p.host_port, "id": p.id, "value": p.value, "text": p.text}[kind](value)

    def _forbidden(self, flow: http.HTTPFlow) -> None:
        for location, text in flow_texts(flow):
            for span in self.detectors.forbidden(text):
                self._hit(location, span.rule, text[span.start:span.end])


def flow_texts(flow: http.HTTPFlow) -> Iterator[tuple[str, str]]:
    """Everything readable in a flow, names included, for the user's `forbidden` patterns."""
    yield "request.url", flow.request.pretty_url
    for side, message in (("request", flow.request), ("response", flow.response)):
        if message is None:
            continue
        for name, value in message.headers.items(multi=True):
            yield f"{side}.header {name}", f"{name}: {value}"
        content = message.get_content(strict=False) or b""
        yield f"{side}.body", content.decode("utf-8", "replace")
    if flow.response is not None:
        yield "response.reason", flow.response.reason
    yield "flow.comment", flow.comment
    if flow.error is not None:
        yield "flow.error", flow.error.msg


def redact_header_value(name: str, value: str) -> str:
    """A sensitive header's value replaced, keeping what is not secret: cookie names and
    attributes, the authentication scheme (`Bearer REDACTED`)."""
    lowered = name.lower()
    if not value.strip():
        return value
    if lowered == "cookie":
        return ";".join(_cookie_pair(p) for p in value.split(";"))
    if lowered == "set-cookie":
        first, semicolon, attributes = value.partition(";")
        return _cookie_pair(first) + semicolon + attributes
    if lowered in ("authorization", "proxy-authorization"):
        scheme, space, _ = value.strip().partition(" ")
        return f"{scheme} {REDACTED}" if space and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", scheme) else REDACTED
    return REDACTED


def _cookie_pair(pair: str) -> str:
    name, eq, value = pair.partition("=")
    return f"{name}={REDACTED}" if eq and value.strip() else (pair if eq or not pair.strip() else REDACTED)


def _textual(content_type: str, content: bytes) -> bool:
    if content_type:
        return any(t in content_type for t in TEXTUAL_TYPES)
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- rebuilding flows from an allow-list of their parts -----------------------------------------

class _Clients:
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


def fresh_copy(source: http.HTTPFlow, clients: _Clients) -> http.HTTPFlow:
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


# --- writing ------------------------------------------------------------------------------------

def write_flows(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path) -> None:
    with target.open("wb") as f:
        writer = mio.FlowWriter(f)
        for flow, extra in zip(flows, extras):
            if extra:
                flow.metadata["har"] = extra
            writer.add(flow)


def write_har(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path) -> None:
    """mitmproxy's own HAR export, plus the HAR fields the analysis reads (connection, _fromCache)."""
    from mitmproxy.addons.savehar import SaveHar

    har = SaveHar().make_har(flows)
    for entry, flow, extra in zip(har["log"]["entries"], flows, extras):
        peer = flow.client_conn.peername
        if peer and tuple(peer) != UNKNOWN_PEER:
            entry["connection"] = f"{peer[0]}:{peer[1]}"
        entry.update(extra)
    target.write_text(json.dumps(har, indent=2, ensure_ascii=False), encoding="utf-8")


WRITERS: dict[str, Callable[[list[http.HTTPFlow], list[dict[str, Any]], Path], None]] = {
    "flows": write_flows, "har": write_har}


def output_format(output: Path, requested: str | None) -> str:
    """`--format` if given, else from OUT's suffix: .har is HAR, anything else a flow file."""
    if requested:
        return requested
    return "har" if output.suffix.lower() in (".har", ".json") else "flows"


# --- sanitize -----------------------------------------------------------------------------------

@dataclass
class SanitizeResult:
    source: str
    output: str | None
    format: str
    flows: int
    hits: list[Hit]
    skipped: int
    pseudonymized: int = 0

    def line(self) -> str:
        changed = len({h.flow for h in self.hits if h.flow is not None})
        what = "would replace" if self.output is None else "replaced"
        line = (f"{self.source}: {what} {len(self.hits)} value(s) in {changed} of {self.flows} flow(s)"
                + (f"; {self.pseudonymized} id(s)/host(s) pseudonymized" if self.pseudonymized else "")
                + (f"; {self.skipped} non-HTTP flow(s) left out" if self.skipped else ""))
        return line + (f"; wrote {self.output} ({self.format}), scanned clean" if self.output else "")


def sanitize(source: str | Path, output: str | Path | None, *, fmt: str | None = None, pseudonymize: bool = False,
             rules: Rules | None = None, dry_run: bool = False) -> SanitizeResult:
    """Redact one recording into a new file (written aside, scanned, then renamed into place)."""
    source = Path(source)
    if not source.is_file():
        raise SanitizeError(f"{source}: no such file")
    detectors = Detectors(rules)
    loaded = load(source, detectors)
    ids = known_ids(loaded.flows, detectors)
    detectors = detectors.with_protected(ids)
    pseudonyms = Pseudonymizer(ids, _hosts(loaded.flows)) if pseudonymize else None
    redactor = FlowRedactor(detectors, file=str(source), pseudonyms=pseudonyms, flow_ids=loaded.kind == "flows")
    clients = _Clients()
    flows, hits = [], list(loaded.dropped)
    for index, original in enumerate(loaded.flows):
        flow = fresh_copy(original, clients)
        hits += redactor.run(flow, index)
        flows.append(flow)
    hits.sort(key=_by_flow)
    extras = [{k: detectors.redact_text(v)[0] if isinstance(v, str) else v for k, v in e.items()}
              for e in loaded.extras]
    result = SanitizeResult(str(source), None, "", len(flows), hits, loaded.skipped,
                            pseudonyms.count if pseudonyms else 0)
    if dry_run:
        return result
    if output is None:
        raise SanitizeError("no output file given (-o OUT)")
    target = Path(output)
    _refuse_overwriting_input(source, target)
    result.format = output_format(target, fmt)
    result.output = str(target)
    _write_checked(flows, extras, target, result.format, rules)
    return result


def _hosts(flows: list[http.HTTPFlow]) -> set[str]:
    hosts = set()
    for flow in flows:
        hosts.add(flow.request.host)
        host_header = flow.request.headers.get("host")
        if host_header:
            hosts.add(host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header)
    return hosts


def _refuse_overwriting_input(source: Path, target: Path) -> None:
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
        raise SanitizeError(f"{target}: is the input file; write the sanitized copy somewhere else")
    if target.is_dir():
        raise SanitizeError(f"{target}: is a folder; give a file name")


def _write_checked(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path, fmt: str,
                   rules: Rules | None) -> None:
    """Write beside the target, scan what was written, rename into place only if it is clean."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        WRITERS[fmt](flows, extras, temp)
        left = scan_recording(temp, Detectors(rules))
        if left:
            first = left[0]
            raise SanitizeError(f"refusing to write {target}: the scan still finds {len(left)} secret(s) in the "
                                f"sanitized output, first in flow {first.flow} at {first.location} ({first.rule})")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


# --- scan ---------------------------------------------------------------------------------------

def scan_paths(paths: Iterable[str | Path], rules: Rules | None = None) -> list[Hit]:
    """Every secret the detectors find in recordings and pollwatch databases."""
    detectors = Detectors(rules)
    hits: list[Hit] = []
    for path in _scan_targets(paths):
        hits += scan_database(path, detectors) if _is_sqlite(path) else scan_recording(path, detectors)
    return hits


def _scan_targets(paths: Iterable[str | Path]) -> list[Path]:
    targets: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            targets.append(path)
        else:
            targets += expand([path])  # folders: the recordings in them; a missing path raises ReadError
    return targets


def scan_recording(path: Path, detectors: Detectors) -> list[Hit]:
    loaded = load(path, detectors)
    detectors = detectors.with_protected(known_ids(loaded.flows, detectors))
    redactor = FlowRedactor(detectors, file=str(path), scan=True, flow_ids=loaded.kind == "flows")
    clients = _Clients()
    hits = list(loaded.dropped)
    for index, flow in enumerate(loaded.flows):
        hits += redactor.run(fresh_copy(flow, clients), index)
    return sorted(hits, key=_by_flow)


def _by_flow(hit: Hit) -> tuple[bool, int]:
    """File order: each flow's findings together, file-level ones last."""
    return hit.flow is None, hit.flow or 0


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == SQLITE_MAGIC


def scan_database(path: Path, detectors: Detectors) -> list[Hit]:
    """Every text column of a pollwatch database; JSON columns walked like bodies."""
    from .storage import COLUMNS, PRIMARY_KEYS, connect

    db = connect(path)
    try:
        conn = db.conn
        ids = {r[0] for r in conn.execute("select job_id from jobs") if r[0]}
        for (text,) in conn.execute("select ids from polls where ids is not null"):
            ids.update(str(v) for v in json.loads(text).values())
        detectors = detectors.with_protected(frozenset(ids))
        hits: list[Hit] = []
        for table, columns in COLUMNS.items():
            names = [c for c, kind in columns.items() if kind is str]
            pk = PRIMARY_KEYS[table]
            for row in conn.execute(f"select {pk}, {', '.join(names)} from {table}"):
                for column, value in zip(names, row[1:]):
                    hits += _cell_hits(str(path), f"{table}:{row[0]}", column, value, detectors)
        return hits
    finally:
        db.conn.close()


def _cell_hits(file: str, where: str, column: str, value: Any, detectors: Detectors) -> list[Hit]:
    if not isinstance(value, str) or not value:
        return []
    if value[:1] in "{[":
        try:
            return _document_hits(json.loads(value), detectors, file, None, where, column)
        except ValueError:
            pass
    hits = [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end])) for s in detectors.spans(value)]
    return hits + [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end]))
                   for s in detectors.forbidden(value)]


__all__ = ["FlowRedactor", "Loaded", "Pseudonymizer", "ReadError", "SanitizeError", "SanitizeResult", "known_ids",
           "load", "redact_header_value", "sanitize", "scan_database", "scan_paths", "scan_recording"]
