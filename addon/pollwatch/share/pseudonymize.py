"""The ids an investigation needs (`known_ids`), kept safe from redaction, and `Pseudonymizer`,
which replaces them and the recording's hostnames with consistent, unguessable stand-ins for
`pollwatch sanitize --pseudonymize`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from mitmproxy import http

from pollwatch.errors import PseudonymizeError
from pollwatch.mitm.flows import observation_from_flow
from pollwatch.core.references import ID_HEADERS
from pollwatch.share.secrets import Detectors
from pollwatch.core.redact import REDACTED, key_words, secret_shapes
from pollwatch.core.config import Config
from pollwatch.core.tracking import Tracker



# --- the ids an investigation needs -------------------------------------------------------------

def known_ids(flows: list[http.HTTPFlow], detectors: Detectors, config: Config | None = None) -> frozenset[str]:
    """Job ids (what pollwatch's own core recognises), request/operation ids (id headers) and
    id-named JSON values: kept (never mistaken for secrets) and, with --pseudonymize, replaced.
    An id shaped like a secret (a JWT, a key, a random token) is not kept: the detectors replace
    it by its fingerprint, the same in its path, Location and body, so its job still links.
    A job's ids are taken as its exchanges go by: a long recording's early jobs leave the
    tracker's memory (`max_jobs`) before the end, and their ids must be replaced all the same."""
    tracker = Tracker(config)
    ids: set[str] = set()
    for flow in flows:
        update = tracker.observe(observation_from_flow(flow))
        for each in update.all() if update is not None else ():
            if each.poll is not None:
                ids.update(each.poll.ids.values())
            job = tracker.jobs.get(each.job.key) if each.job is not None else None
            if job is not None:
                ids.update([job.job_id, *job.aliases, *job.operation_ids.values()])
    for flow in flows:
        for message in (flow.request, flow.response):
            if message is not None:
                ids.update(v for k, v in message.headers.items(multi=True) if is_id_header(k))
                ids.update(_json_ids(message, detectors))
    return frozenset(i for i in ids if i and len(i) <= 200 and not secret_shapes(i))


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
        raise PseudonymizeError(f"cannot pseudonymize id {lowered!r} uniquely")

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
