"""`pollwatch sanitize` and `pollwatch scan`: recordings made safe to share, and the proof.

Every input becomes mitmproxy flows rebuilt from an allow-list of their parts (`recording_flows`);
`FlowRedactor` walks every part that can carry a secret. Sanitize replaces what it finds, scan only
reports it, through the same walk and the same detectors. Sanitize then scans its own output and
refuses to finish if anything is left.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from mitmproxy import http
from mitmproxy.utils.strutils import always_str

from pollwatch.errors import SanitizeError
from pollwatch.share.secrets import Detectors, Hit, Rules, preview, redact_document
from pollwatch.share.pseudonymize import PseudonymizeError, Pseudonymizer, is_id_header, known_ids
from pollwatch.sources.readers import expand
from pollwatch.share.flowio import (
    WRITERS,
    ClientAddresses,
    document_hits,
    fresh_copy,
    load,
    make_headers,
    output_format,
)
from pollwatch.share.redact import REDACTED

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
SQLITE_MAGIC = b"SQLite format 3\x00"



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
    clients = ClientAddresses()
    flows, hits = [], list(loaded.dropped)
    try:
        for index, original in enumerate(loaded.flows):
            flow = fresh_copy(original, clients)
            hits += redactor.run(flow, index)
            flows.append(flow)
    except PseudonymizeError as exc:
        raise SanitizeError(str(exc)) from exc
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
    clients = ClientAddresses()
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
    from pollwatch.store.database import COLUMNS, PRIMARY_KEYS, connect

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
            return document_hits(json.loads(value), detectors, file, None, where, column)
        except ValueError:
            pass
    hits = [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end])) for s in detectors.spans(value)]
    return hits + [Hit(file, None, where, column, s.rule, preview(value[s.start:s.end]))
                   for s in detectors.forbidden(value)]


__all__ = ["FlowRedactor", "SanitizeError", "SanitizeResult", "flow_texts", "redact_header_value", "sanitize",
           "scan_database", "scan_paths", "scan_recording"]
