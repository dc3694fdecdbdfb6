"""Keeping secrets out of what pollwatch writes: which names are sensitive, and URL redaction.

Three name rules, because the same word means different things in different places: `state`
and `code` are OAuth secrets in a query string but a job's state and an error code in JSON,
and `X-Request-Id` is an id a support ticket needs while `X-Session` is a credential.
Used at the storage boundary (nothing secret at rest) and by `pollwatch sanitize`/`scan`
(see secrets.py), so the database and shared recordings follow the same rules.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

_URL = re.compile(r"https?://[^\s\"'<>]+")
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


def safe_text(text: str) -> str:
    """Text fit to leave pollwatch (a log line, a flow comment, a database row): valid UTF-8,
    every URL in it redacted."""
    return redact_text(clean_text(text))



# --- free text (log lines) ------------------------------------------------------------------

_SCHEME_VALUE = re.compile(r"\b(Bearer|Basic|Digest|Token)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_PAIR = re.compile(r"""(?P<key>[A-Za-z_][\w.-]*)(?P<sep>["']?\s*[=:]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s,;&"']+)""")


def redact_log_text(text: str) -> str:
    """A log line or message with URLs redacted, `Bearer …`/`Basic …` credentials and the values
    of sensitive `key=value` / `key: value` pairs (`password=`, `token:`) replaced."""
    text = _SCHEME_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", redact_text(text))
    return _PAIR.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}" if is_sensitive_key(m["key"]) else m.group(0), text)
