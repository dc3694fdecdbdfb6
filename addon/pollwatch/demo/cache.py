"""A small shared (reverse-proxy) HTTP cache in front of a SampleAPI.

It reproduces the classic CDN/gateway mistake pollwatch warns about: a status
response marked ``s-maxage`` is stored and replayed to every poller until it expires,
so clients keep seeing ``queued``/``running`` after the job has finished.

Only GET 200 responses with a positive ``s-maxage`` (else ``max-age``) and without
``no-store``/``no-cache``/``private`` are stored, keyed by path + query.  Hits carry
``Age`` and ``X-Cache: HIT``; other GETs carry ``X-Cache: MISS``; every other method
is forwarded unchanged.  The client's ``Host`` header is passed upstream (like a
typical reverse proxy), so relative ``Location`` headers stay relative and absolute
URLs the origin builds from ``Host`` point back at the cache.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from pollwatch.demo.server import BackgroundServer, Reply, Request

__all__ = ["SharedCache", "shared_ttl"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


def shared_ttl(cache_control: str | None) -> int | None:
    """Seconds a shared cache may store a response, or None if it must not."""
    if not cache_control:
        return None
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if directives.keys() & {"no-store", "no-cache", "private"}:
        return None
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                seconds = int(directives[name])
            except ValueError:
                return None
            return seconds if seconds > 0 else None
    return None


def _bypasses(request: Request) -> bool:
    """A request asking for a fresh answer (`Cache-Control: no-cache`/`no-store`) goes to the
    origin and is not stored, like a CDN's bypass for logged-in users or services."""
    value = (request.headers.get("Cache-Control") or "").lower()
    return "no-cache" in value or "no-store" in value


@dataclass(frozen=True)
class _Entry:
    """A stored response and when it was stored (monotonic)."""

    reply: Reply
    stored_at: float
    ttl: int


class _CachingProxy:
    """Forwarding and caching logic of SharedCache (no listening socket here)."""

    def __init__(self, upstream_url: str, clock: Callable[[], float]) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self._upstream = (parts.hostname, parts.port or 80)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def handle(self, request: Request) -> Reply:
        key = self._key(request.target)
        if request.method != "GET":
            return self._forward(request, key)
        if _bypasses(request):
            return self._forward(request, key).with_headers(("X-Cache", "BYPASS"))
        hit = self._lookup(key)
        if hit is not None:
            return hit
        reply = self._forward(request, key)
        ttl = shared_ttl(reply.header("Cache-Control")) if reply.status == 200 else None
        if ttl is not None:
            with self._lock:
                self._entries[key] = _Entry(reply, self._clock(), ttl)
        return reply.with_headers(("X-Cache", "MISS"))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @staticmethod
    def _key(target: str) -> str:
        """Path + query, also for absolute-form request targets."""
        parts = urlsplit(target)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _lookup(self, key: str) -> Reply | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            age = now - entry.stored_at
            if age >= entry.ttl:
                del self._entries[key]
                return None
        return entry.reply.with_headers(("Age", str(int(age))), ("X-Cache", "HIT"))

    def _forward(self, request: Request, key: str) -> Reply:
        headers = {
            name: value for name, value in request.headers.items() if name.lower() not in _HOP_BY_HOP
        }
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request(request.method, key, body=request.body or None, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except OSError as error:
            return Reply.json(
                502, {"error": f"upstream unreachable: {error}"}, ("Cache-Control", "no-store")
            )
        finally:
            connection.close()
        kept = tuple(
            (name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP
        )
        return Reply(response.status, body, kept)


class SharedCache(BackgroundServer):
    """A real caching reverse proxy on 127.0.0.1 in front of ``upstream_url``."""

    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._proxy = _CachingProxy(upstream_url, time.monotonic)
        self.upstream_url = upstream_url.rstrip("/")
        super().__init__(self._proxy, host, port)

    def clear(self) -> None:
        """Forget every stored response."""
        self._proxy.clear()
