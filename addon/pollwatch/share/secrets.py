"""What counts as a secret in recorded traffic: name rules, value detectors, user rules.

`pollwatch sanitize` replaces what these find; `pollwatch scan` reports it. Both go through the
same `Detectors` object, so a sanitized file scans clean by construction, except for the user's
`forbidden` patterns, which scan reports and sanitize deliberately does not rewrite.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pollwatch.errors import RulesError, first_line
from pollwatch.core.redact import (
    ENCODED_PAIR, JWT, KNOWN_TOKEN, QUERY_PAIR, REDACTED, TOKEN_RUN, USERINFO, fingerprint, is_random, is_sensitive_header,
    is_sensitive_key, is_sensitive_name,
)


@dataclass(frozen=True)
class Hit:
    """One secret found (scan) or one value replaced (sanitize): where, by which rule, a masked preview."""

    file: str
    flow: int | None  # index of the flow / HAR entry / cassette interaction; None for file-level places
    flow_id: str | None
    location: str  # `request.header Authorization`, `response.json $.user.email`, `polls.url`...
    rule: str
    preview: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "flow": self.flow, "flow_id": self.flow_id, "location": self.location,
                "rule": self.rule, "preview": self.preview}


@dataclass(frozen=True)
class Span:
    """Part of a text a detector claims; `detail` names the parameter when there is one."""

    start: int
    end: int
    rule: str
    detail: str = ""


def preview(value: object) -> str:
    """Enough to recognise a value in a report without repeating it."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"{text[:3]}…({len(text)} chars)" if len(text) >= 16 else f"***({len(text)} chars)"


# --- user rules -------------------------------------------------------------------------------

class Rules(BaseModel):
    """Extra rules from `--rules FILE` (YAML, JSON or TOML), added to the built-in ones."""

    model_config = ConfigDict(extra="forbid")

    headers: list[str] = Field(default_factory=list, description="Header names whose values are redacted")
    params: list[str] = Field(default_factory=list, description="Query/form parameter names")
    keys: list[str] = Field(default_factory=list, description="JSON keys at any depth, or paths like $.user.name")
    patterns: list[str] = Field(default_factory=list, description="Regexes redacted wherever they match text")
    forbidden: list[str] = Field(default_factory=list, description="Regexes scan reports and sanitize refuses "
                                 "on instead of rewriting: proof that something is not in the export")
    keep_headers: list[str] = Field(default_factory=list, description="Header names never redacted by name")

    @field_validator("patterns", "forbidden")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return value

    @classmethod
    def load(cls, path: str | Path | None) -> Rules:
        if path is None:
            return cls()
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = (tomllib.loads(text) if path.suffix.lower() == ".toml"
                    else json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text))
            return cls.model_validate(data or {})
        except OSError as exc:
            raise RulesError(f"{path}: cannot read rules ({exc.strerror or exc})") from exc
        except (ValueError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise RulesError(f"{path}: not a valid rules file ({first_line(exc)})") from exc


# --- value detectors: one function per rule ---------------------------------------------------

_AUTH_SCHEME = re.compile(r"(?i)\b(?:bearer|basic|digest|negotiate|ntlm|token)\s+([A-Za-z0-9._~+/=-]{8,})")
_EMAIL = re.compile(r"(?<![\w/:.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w-])([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|credential|session_?id"
    r"|signature|private[_-]?key|access[_-]?key)[\w.-]*)[\"']?\s*[=:]\s*[\"']?([^\s\"'&;,<>{}]{4,})")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")
AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "negotiate", "ntlm", "token"})
SHAPE_RULES = frozenset({"jwt", "known-token", "high-entropy"})
"""Rules that recognise a secret by its shape (core/redact.py's, the database's too): such a value
becomes its fingerprint, so an id that was a token still links its job's path, Location and body."""


def find_jwt(text: str) -> Iterator[Span]:
    """JSON Web Tokens (header.payload.signature, both parts base64url JSON)."""
    for m in JWT.finditer(text):
        yield Span(m.start(), m.end(), "jwt")


def find_auth_scheme(text: str) -> Iterator[Span]:
    """`Bearer <token>` / `Basic <credentials>` anywhere in text; the scheme word is kept."""
    for m in _AUTH_SCHEME.finditer(text):
        value = m.group(1)
        if re.fullmatch(r"[A-Za-z_-]+=", value):  # `Bearer realm="..."`: a parameter, not a credential
            continue
        if _unredacted(value) and (len(value) >= 24 or any(c.isdigit() or c in "+/=._-~" for c in value)):
            yield Span(m.start(1), m.end(1), "auth-scheme")


def find_email(text: str) -> Iterator[Span]:
    """E-mail addresses (not URL userinfo, which has its own rule)."""
    for m in _EMAIL.finditer(text):
        if not m.group(0).startswith(REDACTED + "@"):
            yield Span(m.start(), m.end(), "email")


def find_userinfo(text: str) -> Iterator[Span]:
    """`user:password@` in URLs."""
    for m in USERINFO.finditer(text):
        if _unredacted(m.group(1)):
            yield Span(m.start(1), m.end(1), "url-userinfo")


def find_query_secret(text: str, is_sensitive: Callable[[str], bool] = is_sensitive_name) -> Iterator[Span]:
    """`?token=...` / `&sig=...` / `#access_token=...` in URLs, absolute or relative, wherever they appear,
    and percent-encoded in a URL inside a query value (`%3Fsig%3D...`)."""
    for pattern in (QUERY_PAIR, ENCODED_PAIR) if "%" in text else (QUERY_PAIR,):
        for m in pattern.finditer(text):
            if is_sensitive(unquote_plus(m.group(1))) and _unredacted(m.group(2)):
                yield Span(m.start(2), m.end(2), "sensitive-param", unquote_plus(m.group(1)))


def find_assignment(text: str) -> Iterator[Span]:
    """`password=...`, `"api_key": "..."` written into free text (logs, error pages, scripts)."""
    for m in _ASSIGNMENT.finditer(text):
        if _unredacted(m.group(2)) and m.group(2).lower() not in AUTH_SCHEMES:
            yield Span(m.start(2), m.end(2), "sensitive-assignment", m.group(1))


def find_private_key(text: str) -> Iterator[Span]:
    """PEM private key blocks."""
    for m in _PRIVATE_KEY.finditer(text):
        yield Span(m.start(), m.end(), "private-key")


def find_known_token(text: str) -> Iterator[Span]:
    """Vendor key formats the entropy rule can miss (AWS key ids are all capitals, say)."""
    for m in KNOWN_TOKEN.finditer(text):
        yield Span(m.start(), m.end(), "known-token")


def find_high_entropy(text: str, protected: frozenset[str] = frozenset()) -> Iterator[Span]:
    """Long random-looking strings (API keys, session ids, signatures). Hex strings such as
    UUIDs, hashes and trace ids are left alone, like ids pollwatch knows as job or request ids."""
    for m in TOKEN_RUN.finditer(text):
        value = m.group(0)
        if value not in protected and is_random(value):
            yield Span(m.start(), m.end(), "high-entropy")


def _unredacted(value: str) -> bool:
    return bool(value) and value.strip("\"'") not in ("", REDACTED) and not value.startswith(REDACTED)


# --- the bundle sanitize and scan share ---------------------------------------------------------

class Detectors:
    """Built-in rules plus the user's, and the ids this recording must keep (job ids, request ids)."""

    def __init__(self, rules: Rules | None = None, protected: frozenset[str] = frozenset()) -> None:
        self.rules = rules or Rules()
        self.protected = protected
        self._headers = {h.lower() for h in self.rules.headers}
        self._keep_headers = {h.lower() for h in self.rules.keep_headers}
        self._params = {p.lower() for p in self.rules.params}
        self._keys = {k.lower() for k in self.rules.keys if not k.startswith("$")}
        self._key_paths = {k for k in self.rules.keys if k.startswith("$")}
        self._patterns = [re.compile(p) for p in self.rules.patterns]
        self._forbidden = [re.compile(p) for p in self.rules.forbidden]

    def with_protected(self, ids: frozenset[str]) -> Detectors:
        return Detectors(self.rules, frozenset(ids))

    # names

    def sensitive_header(self, name: str) -> bool:
        lowered = name.lower()
        if lowered in self._keep_headers:
            return False
        return lowered in self._headers or is_sensitive_header(name)

    def sensitive_param(self, name: str) -> bool:
        return name.lower() in self._params or is_sensitive_name(name)

    def sensitive_key(self, name: str, path: str) -> bool:
        return (name.lower() in self._keys or _strip_indexes(path) in self._key_paths
                or is_sensitive_key(name))

    # values

    def spans(self, text: str) -> list[Span]:
        """Non-overlapping parts of `text` to redact, earliest and longest first."""
        if len(text) < 4:
            return []
        found = [*find_private_key(text), *find_jwt(text), *find_userinfo(text),
                 *find_query_secret(text, self.sensitive_param), *find_auth_scheme(text), *find_assignment(text),
                 *find_email(text), *find_known_token(text), *self._custom(text), *find_high_entropy(text, self.protected)]
        return _non_overlapping(found)

    def _custom(self, text: str) -> Iterator[Span]:
        """The user's `patterns`."""
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                if m.end() > m.start() and _unredacted(m.group(0)):
                    yield Span(m.start(), m.end(), f"pattern {pattern.pattern}")

    def forbidden(self, text: str) -> list[Span]:
        """The user's `forbidden` patterns: reported by scan, never rewritten by sanitize."""
        return [Span(m.start(), m.end(), f"forbidden {p.pattern}") for p in self._forbidden for m in p.finditer(text)]

    def redact_text(self, text: str) -> tuple[str, list[tuple[Span, str]]]:
        """`text` with every span replaced (by REDACTED; a shape by its fingerprint), and what was replaced."""
        spans = self.spans(text)
        if not spans:
            return text, []
        out, cursor, replaced = [], 0, []
        for span in spans:
            original = text[span.start:span.end]
            out += [text[cursor:span.start], fingerprint(original) if span.rule in SHAPE_RULES else REDACTED]
            replaced.append((span, original))
            cursor = span.end
        out.append(text[cursor:])
        return "".join(out), replaced


def _non_overlapping(spans: list[Span]) -> list[Span]:
    """Earliest and longest first; of two alike, a rule by name (REDACTED) before a shape."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start), s.rule in SHAPE_RULES)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def _strip_indexes(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path)
