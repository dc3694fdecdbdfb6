"""Keeping secrets out of what pollwatch writes: sensitive query parameters and URL userinfo.

Used at the storage boundary (nothing secret at rest) and, later, by the sanitizer.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

SENSITIVE_WORDS = ("token", "secret", "key", "auth", "session", "signature", "password", "passwd",
                   "credential", "csrf", "xsrf")
SENSITIVE_EXACT = frozenset({
    "code", "state", "sig", "client_secret", "id_token", "access_token", "refresh_token", "samlresponse",
    "samlrequest", "x-amz-signature", "x-amz-credential", "x-amz-security-token", "apikey", "api_key", "pwd",
})
NOT_SENSITIVE = frozenset({"api-version", "cache-control", "etag", "x-request-id", "keyword", "keys"})

_URL = re.compile(r"https?://[^\s\"'<>]+")


def is_sensitive_name(name: str) -> bool:
    """Header, query parameter or field names whose values must never be written out."""
    lowered = name.strip().lower()
    if lowered in NOT_SENSITIVE:
        return False
    return lowered in SENSITIVE_EXACT or any(word in lowered for word in SENSITIVE_WORDS)


def redact_url(url: str) -> str:
    """The URL with userinfo and sensitive query values replaced; everything else kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_sensitive_name(k) for k, _ in pairs):
            query = urlencode([(k, REDACTED if is_sensitive_name(k) else v) for k, v in pairs], safe="/:")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside a piece of text, redacted."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)
