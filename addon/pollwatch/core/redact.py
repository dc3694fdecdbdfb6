"""Keeping secrets out of what pollwatch writes: which names are sensitive, which values are
secrets by their shape, and `safe_text`, the one function every written text goes through.

Three name rules, because the same word means different things in different places: `state`
and `code` are OAuth secrets in a query string but a job's state and an error code in JSON,
and `X-Request-Id` is an id a support ticket needs while `X-Session` is a credential.
Shapes (a JWT, a vendor key, a long random string) catch what no name gives away: a token used
as a job id, a key as a path segment. Such a value becomes a fingerprint (`redacted-<hex>`), the same
for the same value everywhere, so a job stays one job and two jobs stay two.
Used at the storage boundary (nothing secret at rest), for log lines and flow comments, and by
`pollwatch sanitize`/`scan` (see share/secrets.py), so all of them follow the same rules.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from itertools import pairwise
from typing import Any
from urllib.parse import unquote_plus

from pollwatch.core.memo import remembered_when_short
from pollwatch.core.observation import clean_text

REDACTED = "REDACTED"

# --- query parameters and form fields ------------------------------------------------------

SENSITIVE_WORDS = ("token", "secret", "key", "auth", "session", "signature", "password", "passwd",
                   "credential", "csrf", "xsrf")
SENSITIVE_EXACT = frozenset({
    "code", "state", "sig", "client_secret", "id_token", "access_token", "refresh_token", "samlresponse",
    "samlrequest", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "apikey", "api_key", "pwd",
    "relaystate", "nonce", "code_verifier", "assertion", "client_assertion", "otp",
})
NOT_SENSITIVE = frozenset({"api-version", "cache-control", "etag", "x-request-id", "keyword", "keys"})

# --- headers --------------------------------------------------------------------------------

HEADER_WORDS = (*SENSITIVE_WORDS, "cookie")
SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token",
    "x-csrf-token", "x-xsrf-token", "csrf-token", "xsrf-token",
    # personal data: the client's own address
    "forwarded", "x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip", "x-client-ip",
})
KEPT_HEADERS = frozenset({
    "etag", "location", "content-location", "operation-location", "azure-asyncoperation",
    "azure-asyncnotification", "idempotency-key", "traceparent", "tracestate", "keep-alive",
})
"""Cache, reference and id headers an investigation needs; URLs in them still get URL redaction."""

# --- JSON keys ------------------------------------------------------------------------------

KEY_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "authorization", "credential",
             "signature", "cookie", "email", "phone", "address", "creditcard", "privatekey", "session")
"""Matched at the start or end of a key's words: `accessToken`, `clientSecret`, `ipAddress`."""
KEY_TOKENS = frozenset({"key", "auth", "pwd", "pin", "otp", "ssn", "card", "iban", "cvv", "cvc", "sig", "jwt"})
"""Matched as whole words only: `primaryKey`, `card_number`, but not `monkey` or `discard`."""
KEY_DESCRIPTORS = frozenset({
    "type", "kind", "version", "source", "status", "state", "usage", "props", "properties", "policy", "size",
    "length", "count", "format", "algorithm", "alg", "name", "prefix", "url", "uri", "endpoint", "mode",
    "scheme", "method", "enabled", "required", "expiry", "expires", "expiration", "verified", "present",
})
"""A last word that makes the key describe a secret rather than hold it: `keySource`, `tokenType`,
`publicIPAddressVersion`, `authorizationUseStatus`."""

_KEY_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def is_sensitive_name(name: str) -> bool:
    """Query parameter or form field names whose values must never be written out."""
    lowered = name.strip().lower()
    if lowered in NOT_SENSITIVE:
        return False
    return lowered in SENSITIVE_EXACT or any(word in lowered for word in SENSITIVE_WORDS)


def is_sensitive_header(name: str) -> bool:
    """Header names whose values are credentials or personal data. Cache and id headers
    (`Cache-Control`, `ETag`, `X-Request-Id`, `Operation-Location`...) are kept."""
    lowered = name.strip().lower()
    if lowered in SENSITIVE_HEADERS:
        return True
    if lowered in KEPT_HEADERS or "cache" in lowered or _is_id_header(lowered):
        return False
    return any(word in lowered for word in HEADER_WORDS)


def _is_id_header(lowered: str) -> bool:
    return lowered.endswith(("-id", "_id", "-ids", "requestid")) and "session" not in lowered


def key_words(name: str) -> list[str]:
    """A JSON key's words: `accessToken` -> access, token; `card_number` -> card, number."""
    return [w.lower() for w in _KEY_SPLIT.split(name) if w]


def is_sensitive_key(name: str) -> bool:
    """JSON keys (at any depth) whose values are secrets or personal data. `status`, `state`,
    `code`, `id` and `name` are not: pollwatch reads jobs from them."""
    words = key_words(name)
    joined = "".join(words)
    if len(words) > 1 and words[-1] in KEY_DESCRIPTORS:
        return False
    if any(w in KEY_TOKENS for w in words):
        return True
    return any(w.startswith(k) or w.endswith(k) for k in KEY_WORDS for w in (*words, joined))


# --- values that are secrets by their shape ---------------------------------------------------

JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
KNOWN_TOKEN = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bglpat-[A-Za-z0-9_-]{20,}|\bnpm_[A-Za-z0-9]{36}")
"""Vendor key formats the entropy rule can miss (AWS key ids are all capitals, say)."""
TOKEN_RUN = re.compile(r"[A-Za-z0-9+_-]{20,}={0,2}")
_PLAIN_SEGMENT = re.compile(r"[a-z]+|[A-Z][a-z]+|[A-Z]+|[0-9]+")
_HEX_ID = re.compile(r"[0-9a-fA-F-]+")

ENTROPY_MIN_LENGTH = 20
ENTROPY_BITS = 3.7
"""Random base62/base64 of 20+ characters scores above this; words, paths and identifiers below."""
FINGERPRINT = "redacted-"
FINGERPRINT_HEX = 16
"""Hex digits of SHA-256 kept: 64 bits, so no two jobs share a fingerprint by chance. The prefix is
no sensitive word (`secret`, `token`...), so a fingerprint never reads as a secret's name."""


def is_random(value: str) -> bool:
    """Mixed letters and digits with high per-character entropy, not hex, not a stand-in already.
    UUIDs, hashes, trace ids, `e-1001` and `20260101T120000-ab12cd` are not random."""
    core = value.strip("=-_")
    if len(core) < ENTROPY_MIN_LENGTH or _HEX_ID.fullmatch(core) or REDACTED in core or FINGERPRINT in core:
        return False
    if not (any(c.isdigit() for c in core) and any(c.islower() for c in core) and any(c.isupper() for c in core)):
        return False
    segments = re.split(r"[+_-]", core)  # `184-linuxkit-x86_64-with-Ubuntu-18` is words, not noise
    mixed = sum(len(s) for s in segments if not _PLAIN_SEGMENT.fullmatch(s))
    return mixed >= len(core) / 2 and shannon_bits(core) >= ENTROPY_BITS and _class_switches(core) >= 0.42


def shannon_bits(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _class_switches(text: str) -> float:
    """How often neighbouring characters change class: random strings often, CamelCase words rarely."""
    kinds = ["d" if c.isdigit() else "u" if c.isupper() else "l" if c.islower() else "o" for c in text]
    return sum(a != b for a, b in pairwise(kinds)) / max(len(text) - 1, 1)


def secret_shapes(text: str) -> list[tuple[int, int]]:
    """Where `text` holds a JWT, a vendor key or a long random token: non-overlapping spans,
    earliest and longest first."""
    spans = [m.span() for pattern in (JWT, KNOWN_TOKEN) for m in pattern.finditer(text)]
    spans += [m.span() for m in TOKEN_RUN.finditer(text) if is_random(m.group(0))]
    kept: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda s: (s[0], s[0] - s[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end))
    return kept


def fingerprint(value: str) -> str:
    """A stand-in for a secret: the same value always gives the same `redacted-<hex>`, different
    values different ones, and nothing about the value can be read back from it."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{FINGERPRINT}{digest[:FINGERPRINT_HEX]}"


def fingerprint_secrets(text: str) -> str:
    """`text` with every secret-shaped part replaced by its fingerprint (an id, a path segment,
    a fragment, a header value: the same token gets the same stand-in wherever it stands)."""
    spans = secret_shapes(text)
    if not spans:
        return text
    out, cursor = [], 0
    for start, end in spans:
        out += [text[cursor:start], fingerprint(text[start:end])]
        cursor = end
    return "".join(out) + text[cursor:]


# --- URLs and text --------------------------------------------------------------------------

USERINFO = re.compile(r"(?<=://)([^/\s\"'<>?#\\]+)@")
"""Up to the last `@` before the host, as URL parsers read it: a password may hold an unencoded `@`."""
QUERY_PAIR = re.compile(r"(?<=[?&#;])([^=&#;\s\"'<>?\\]+)=([^&#;\s\"'<>\\]*)")
"""`name=value` after `?`, `&`, `;` or `#`: query strings and fragments (`#access_token=…`),
in absolute URLs, relative ones and text that quotes them."""
ENCODED_PAIR = re.compile(r"(?i)(?<=%3F|%26|%23)((?:[^=&#;%\s\"'<>?\\]|%(?!3D|26|23)[0-9A-F]{2})+)%3D"
                          r"((?:[^&#;%\s\"'<>\\]|%(?!26|23)[0-9A-F]{2})*)")
"""The same in a percent-encoded URL inside a query value (`?next=https%3A%2F%2Fs3%2Fx%3Fsig%3D…`)."""
_CAREFUL = re.compile(r"[?#@=]|%3[dD]|eyJ|xox[abprs]-|[^\x00-\x7f]|(?<![A-Za-z0-9+_-])(?=[A-Za-z0-9+_-]{20})[0-9a-f+_-]*[g-zA-Z]")
"""Text without any of these (a query, a fragment, userinfo, a JWT, a 20+ character run that is
not lower-case hex such as a UUID) has nothing `redact_text` would change: kept fast."""
TEXT_LIMIT = 16_384
"""Characters of a log line or flow comment kept (a traceback fits)."""
CELL_LIMIT = 80_000
"""Characters of a database text kept: a 64 KiB body excerpt fits."""


def _redact_param(m: re.Match[str]) -> str:
    """A `name=value` pair (plain, or percent-encoded inside another value) with its value
    REDACTED when the name is sensitive."""
    name, value = m.group(1), m.group(2)
    if value and value != REDACTED and is_sensitive_name(unquote_plus(name)):
        return f"{m.group(0)[:m.start(2) - m.start(0)]}{REDACTED}"
    return m.group(0)


def redact_text(text: str) -> str:
    """URL userinfo and sensitive query/fragment values become REDACTED, secret-shaped values
    (JWTs, vendor keys, random tokens: ids and path segments included) their fingerprint."""
    if not _CAREFUL.search(text):
        return text
    return _redact_short(text)


def _redact(text: str) -> str:
    if "@" in text:
        text = USERINFO.sub(f"{REDACTED}@", text)
    if "=" in text:
        text = QUERY_PAIR.sub(_redact_param, text)
    if "%" in text:
        text = ENCODED_PAIR.sub(_redact_param, text)
    return fingerprint_secrets(text)


SHORT_TEXT = 512
"""Ids, keys and URLs repeat on every poll of a job: their redaction is remembered."""
_redact_short = remembered_when_short(_redact, longest=SHORT_TEXT, size=4096)


def redact_url(url: str) -> str:
    """A URL (absolute or relative) with its secrets replaced: see `redact_text`."""
    return redact_text(url)


def bounded(text: str, limit: int) -> str:
    """At most `limit` characters; a cut says how much went."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text) - limit} more chars)"


TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_.~%-")
"""What a token (a JWT, a key, a signature, percent-encoded or not) is made of."""


def safe_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """Text fit to leave pollwatch (a log line, a flow comment, a database cell, JSON, HTML):
    valid UTF-8, secrets redacted (`redact_text`), at most `limit` characters. Redacted before
    it is cut, so no half-cut secret survives."""
    if len(text) > 2 * limit:  # a token the cut halves goes whole: redaction may shrink what precedes it
        text = _cut_between_tokens(text, 2 * limit)
    if text.isascii():  # valid UTF-8 as it is; the common case, kept fast
        if not _CAREFUL.search(text):
            return text if len(text) <= limit else bounded(text, limit)
    else:
        text = clean_text(text)
    return bounded(redact_text(text), limit)


def _cut_between_tokens(text: str, at: int) -> str:
    """`text[:at]`, less the start of a token the cut would halve (nothing left of it to detect)."""
    end = at
    if text[at] in TOKEN_CHARS:
        while end and text[end - 1] in TOKEN_CHARS:
            end -= 1
    return text[:end or at]  # all one token: redacted as one, nothing before it shrinks


VALIDATORS = frozenset({"etag", "if-none-match", "if-match"})
"""Cache validators look random but are not secrets: kept as sent, so they can be compared."""


def safe_value(value: Any, key: str = "") -> Any:
    """A value bound for the database: every string in it (nested in dicts and lists too) made
    safe, cache validators excepted."""
    if isinstance(value, str):
        return value if key in VALIDATORS else safe_cell(value)
    if isinstance(value, dict):
        return {k: safe_value(v, k) for k, v in value.items()} if value else value
    if isinstance(value, list):
        return [safe_value(v, key) for v in value] if value else value
    return value


def safe_cell(value: str) -> str:
    """A text bound for a database cell (not a cache validator), made safe."""
    return _safe_cell_kept(value)


def _safe_cell(value: str) -> str:
    if value.isascii() and len(value) <= CELL_LIMIT and not _CAREFUL.search(value):
        return value
    return safe_text(value, CELL_LIMIT)


CELL_KEPT_LENGTH = 1024
"""Cells up to this long have their safe form remembered: a poll's URL, state word and header
values come again with every poll of the job, and the database writer makes every cell safe."""
_safe_cell_kept = remembered_when_short(_safe_cell, longest=CELL_KEPT_LENGTH, size=8192)


# --- free text (log lines) ------------------------------------------------------------------

_SCHEME_VALUE = re.compile(r"\b(Bearer|Basic|Digest|Token)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_PAIR = re.compile(r"""(?P<key>[A-Za-z_][\w.-]*)(?P<sep>["']?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&"']+)""")


def redact_log_text(text: str) -> str:
    """A log line or message with URLs redacted, `Bearer …`/`Basic …` credentials and the values
    of sensitive `key=value` / `key: value` pairs (`password=`, `token:`) replaced."""
    text = _SCHEME_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", redact_text(text))
    return _PAIR.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}" if is_sensitive_key(m["key"]) else m.group(0), text)
