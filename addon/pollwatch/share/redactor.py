"""One flow made safe: `FlowRedactor` walks every part of a flow that can carry a secret.

Sanitize replaces what the detectors find; scan runs the same walk on a throwaway copy and only
reports it, so a sanitized file scans clean by construction. Here too the per-part helpers both
share: header values (`redact_header_value`) and the texts the user's `forbidden` patterns see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import quote_plus, unquote_plus

from mitmproxy import http
from mitmproxy.utils.strutils import always_str

from pollwatch.share.documents import redact_document
from pollwatch.share.loading import make_headers
from pollwatch.share.pseudonymize import Pseudonymizer, is_id_header
from pollwatch.core.redact import REDACTED
from pollwatch.share.secrets import Detectors, Hit, preview

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
        return make_headers(fields)

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


__all__ = ["FlowRedactor", "flow_texts", "redact_header_value"]
