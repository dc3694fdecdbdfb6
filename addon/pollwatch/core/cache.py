"""HTTP caching analysis of a status response (RFC 9111): can it be reused, was it reused?

Pure functions over headers, so the same verdict is reached live and offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum


from pollwatch.core.memo import remembered_when_short
from pollwatch.core.observation import Headers

HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1

RESPONSE_CACHE_HEADERS = (
    "cache-control", "expires", "age", "etag", "last-modified", "date", "pragma", "vary",
    "cache-status", "x-cache", "x-cache-status", "cf-cache-status", "x-cache-hits", "via",
)
REQUEST_CACHE_HEADERS = ("cache-control", "pragma", "if-none-match", "if-modified-since")

_HIT_WORDS = frozenset({"hit", "stale", "updating"})
_HIT_HEADERS = frozenset({"cache-status", "x-cache", "cf-cache-status", "x-cache-status", "x-cache-hits", "age"})
"""Every header `hit_signals` reads: most responses carry none of them."""
KEPT_LENGTH = 128
"""Header values at most this long have their parse remembered; longer ones are parsed each time."""
_DIRECTIVE = re.compile(r'\s*([^=,\s]+)\s*(?:=\s*("[^"]*"|[^,]*))?\s*(?:,|$)')


class Verdict(StrEnum):
    """May a cache reuse this response without asking the origin?"""

    NO_STORE = "no-store"          # must not be stored
    REVALIDATE = "revalidate"      # no-cache / max-age=0 / already expired: asked every time
    FRESH = "fresh"                # explicit freshness lifetime > 0
    HEURISTIC = "heuristic"        # no explicit expiry, but heuristically fresh (Last-Modified)
    NOT_STORED = "not-stored"      # no freshness information and not heuristically cacheable

    @property
    def reusable(self) -> bool:
        return self in (Verdict.FRESH, Verdict.HEURISTIC)


class ServedBy(StrEnum):
    ORIGIN = "origin"
    SHARED_CACHE = "shared-cache"
    CLIENT_CACHE = "client-cache"  # 304: the client shows its stored copy
    BROWSER_CACHE = "browser-cache"  # a HAR says the browser answered from its cache, no request made


@dataclass(frozen=True, slots=True)
class CacheAnalysis:
    """What the cache headers of one response say (a plain class: one is made for every poll)."""

    verdict: Verdict
    freshness_lifetime: float | None
    served_by: ServedBy
    hit_signals: list[str]
    age: float | None
    date_lag: float | None  # seconds between Date and the response's arrival


def parse_directives(value: str | None) -> dict[str, str | None]:
    """Cache-Control directives, names lower-cased, quoted values unquoted."""
    if not value:
        return {}
    directives: dict[str, str | None] = {}
    for match in _DIRECTIVE.finditer(value):
        name, arg = match.group(1), match.group(2)
        if name:
            directives.setdefault(name.lower(), arg.strip().strip('"') if arg is not None else None)
    return directives


_directives = remembered_when_short(parse_directives, longest=KEPT_LENGTH, size=256)
"""`parse_directives` for `freshness`, which only reads the result: a status endpoint sends the
same Cache-Control with every poll."""


def parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(int(value.strip().split(",")[0].strip()))
    except ValueError:
        return None


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date as a Unix time, or None. Remembered when short (a date is 29 characters): every
    response carries a Date, the same one for every response within its second, and the parse
    costs more than the rest of a cache analysis."""
    if not value:
        return None
    return _date(value)


def _parse_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_date = remembered_when_short(_parse_date, longest=KEPT_LENGTH, size=512)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds to wait: either delta-seconds or an HTTP date."""
    seconds = parse_seconds(value)
    if seconds is not None:
        return max(seconds, 0.0)
    when = parse_http_date(value)
    return max(when - now, 0.0) if when is not None else None


def freshness(headers: Headers, status: int, arrived: float) -> tuple[Verdict, float | None]:
    """The response's cache verdict and freshness lifetime in seconds (RFC 9111 4.2.1, 4.2.2)."""
    cc = _directives(headers.get("cache-control", ""))
    if "no-store" in cc:
        return Verdict.NO_STORE, None
    if "no-cache" in cc and cc["no-cache"] is None:
        return Verdict.REVALIDATE, 0.0
    if headers.get("vary", "").strip() == "*":
        return Verdict.REVALIDATE, 0.0
    explicit = [d for d in ("s-maxage", "max-age") if d in cc]
    if explicit:
        # s-maxage speaks to shared caches, max-age to the browser: reusable if either allows it.
        lifetime = max(parse_seconds(cc[d]) or 0.0 for d in explicit)  # an invalid value counts as stale
        return (Verdict.FRESH if lifetime > 0 else Verdict.REVALIDATE), lifetime
    if "expires" in headers:
        expires = parse_http_date(headers["expires"])
        date = parse_http_date(headers.get("date")) or arrived
        if expires is None:
            return Verdict.REVALIDATE, 0.0  # "0", "-1": already expired
        lifetime = expires - date
        return (Verdict.FRESH if lifetime > 0 else Verdict.REVALIDATE), max(lifetime, 0.0)
    if status in HEURISTICALLY_CACHEABLE or "public" in cc:
        last_modified = parse_http_date(headers.get("last-modified"))
        if last_modified is not None:
            date = parse_http_date(headers.get("date")) or arrived
            lifetime = HEURISTIC_FRACTION * (date - last_modified)
            if lifetime > 0:
                return Verdict.HEURISTIC, lifetime
    return Verdict.NOT_STORED, None


def hit_signals(headers: Headers) -> list[str]:
    """Headers showing that an intermediary, not the origin, produced this response."""
    signals: list[str] = []
    if _HIT_HEADERS.isdisjoint(headers):
        return signals
    for entry in headers.get("cache-status", "").split(","):
        params = [p.strip().lower() for p in entry.split(";")[1:]]
        if "hit" in params:
            signals.append(f"Cache-Status: {entry.strip()}")
    for name in ("x-cache", "cf-cache-status", "x-cache-status"):
        value = headers.get(name)
        if value and any(_is_hit_word(word) for word in re.split(r"[\s,]+", value)):
            signals.append(f"{name}: {value}")
    hits = headers.get("x-cache-hits")
    if hits and any((parse_seconds(h) or 0) > 0 for h in hits.split(",")):
        signals.append(f"x-cache-hits: {hits}")
    age = parse_seconds(headers.get("age"))
    if age is not None and age > 0:
        signals.append(f"age: {headers['age']}")
    return signals


def _is_hit_word(word: str) -> bool:
    word = word.strip().lower()
    return word in _HIT_WORDS or (word.startswith("tcp_") and "hit" in word)


def analyse(headers: Headers, status: int | None, arrived: float, served_from: str | None = None) -> CacheAnalysis:
    """Everything the cache rules need about one response."""
    if status is None:
        return CacheAnalysis(verdict=Verdict.NOT_STORED, freshness_lifetime=None,
                             served_by=ServedBy.ORIGIN, hit_signals=[], age=None, date_lag=None)
    verdict, lifetime = freshness(headers, status, arrived)
    age = parse_seconds(headers.get("age"))
    if verdict.reusable and age is not None and lifetime is not None and age >= lifetime:
        verdict = Verdict.REVALIDATE  # already stale on arrival: no cache may reuse it unasked
    signals = hit_signals(headers)
    if served_from == ServedBy.BROWSER_CACHE:
        served_by = ServedBy.BROWSER_CACHE
    elif status == 304:
        served_by = ServedBy.CLIENT_CACHE
    elif signals:
        served_by = ServedBy.SHARED_CACHE
    else:
        served_by = ServedBy.ORIGIN
    date = parse_http_date(headers.get("date"))
    return CacheAnalysis(
        verdict=verdict,
        freshness_lifetime=lifetime,
        served_by=served_by,
        hit_signals=signals,
        age=age,
        date_lag=None if date is None else arrived - date,
    )


def pick(headers: Headers, names: tuple[str, ...]) -> dict[str, str]:
    """Only the allow-listed headers, for storage and evidence."""
    return {name: headers[name] for name in names if name in headers}
