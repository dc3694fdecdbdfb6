"""URL identity: when two URLs name the same status resource, and where ids sit in a URL.

Comparisons are made on canonical keys (origin with explicit port, decoded path, sorted query),
so `HTTP://Api:80/a?b=1&a=2` and `http://api/a?a=2&b=1` are the same status URL.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

KEY_CACHE = 4096
"""URL keys remembered: a poll's URL is keyed several times per exchange, and polls repeat."""


def split(url: str) -> SplitResult:
    """urlsplit that never raises: a malformed URL (bad IPv6 literal) splits as a bare path."""
    try:
        return urlsplit(url)
    except ValueError:
        return SplitResult("", "", url, "", "")


@lru_cache(maxsize=KEY_CACHE)
def origin_of(url: str) -> str:
    """scheme://host:port with the default port made explicit, for host comparisons. A port that
    is out of range or not a number is kept as written."""
    parts = split(url)
    scheme = parts.scheme.lower() or "http"
    try:
        port: int | str | None = parts.port
    except ValueError:
        port = parts.netloc.rpartition(":")[2]
    port = port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


@lru_cache(maxsize=KEY_CACHE)
def path_key(url: str) -> str:
    """Origin and decoded path, without the query: the same resource asked differently."""
    return f"{origin_of(url)}{unquote(split(url).path) or '/'}"


@lru_cache(maxsize=KEY_CACHE)
def url_key(url: str) -> str:
    """Canonical form of a URL for equality: origin, decoded path, sorted query parameters."""
    parts = split(url)
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    path = unquote(parts.path) or "/"
    return f"{origin_of(url)}{path}?{query}"


def path_segments(url: str) -> list[str]:
    path = split(url).path
    if "%" not in path:  # nothing to decode: the usual case, and every request asks
        return [s for s in path.split("/") if s]
    return [unquote(s) for s in path.split("/") if s]


def url_tokens(url: str) -> list[str]:
    """Whole path segments and query values: where a job id may appear in a poll URL."""
    segments = path_segments(url)
    return segments + [v for _, v in query_values(url)] if "?" in url else segments


def query_values(url: str) -> list[tuple[str, str]]:
    return parse_qsl(split(url).query, keep_blank_values=False)
