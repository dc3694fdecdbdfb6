"""A small loopback HTTP/1.1 server: Request in, Reply out, served from a daemon thread.

It exists so the sample job API (api.py) and the shared cache in front of it (cache.py) can
both be plain ``handle(Request) -> Reply`` applications and leave sockets, keep-alive and
shutdown to one place.  Only the standard library is used (``http.server``), always over
HTTP/1.1 with ``Content-Length`` so keep-alive and browser ETag revalidation behave like
production.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self, cast
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "NO_STORE",
    "Application",
    "BackgroundServer",
    "Reply",
    "Request",
    "api_error",
    "not_found",
]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Request:
    """What a handler hands to an application: enough to route and answer."""

    method: str
    target: str
    headers: Message
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; ``delay`` holds it back before sending (slow-then-fast)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[str, str]) -> Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, (("Content-Type", "application/json"), *headers))

    @classmethod
    def empty(cls, status: int, *headers: tuple[str, str]) -> Reply:
        return cls(status, b"", headers)

    def with_headers(self, *headers: tuple[str, str]) -> Reply:
        return dataclasses.replace(self, headers=(*self.headers, *headers))

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


NO_STORE = ("Cache-Control", "no-store")


def api_error(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    """JSON error body ``{"error": message}``, never cacheable."""
    return Reply.json(status, {"error": message}, NO_STORE, *headers)


def not_found() -> Reply:
    return api_error(404, "not found")


class Application(Protocol):
    """Anything a BackgroundServer can serve."""

    def handle(self, request: Request) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    """Translates http.server calls into Request -> Reply, quietly and over HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    server_version = "pollwatch-demo/1"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Stay silent: the demo and the tests own stderr."""

    def setup(self) -> None:
        super().setup()
        self._server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server().untrack(self.connection)

    def _server(self) -> _QuietServer:
        return cast(_QuietServer, self.server)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, self.path, self.headers, body)
        try:
            reply = self._server().app.handle(request)
        except Exception:  # a bug in the demo must not hang the client
            log.exception("demo server failed on %s %s", self.command, self.path)
            reply = api_error(500, "internal error")
        if reply.delay > 0:
            time.sleep(reply.delay)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        names = {name.lower() for name, _ in reply.headers}
        self.send_response_only(reply.status)
        if "server" not in names:
            self.send_header("Server", self.version_string())
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        for name, value in reply.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        has_body = reply.status >= 200 and reply.status not in (204, 304)
        if has_body:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if has_body and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class _QuietServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its application and can drop open connections."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Application) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up keep-alive connections so stop() really stops serving."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log at debug level instead of printing tracebacks to stderr."""
        log.debug("connection from %s failed", client_address, exc_info=True)


class BackgroundServer:
    """Serves an Application from a daemon thread; start()/stop() or use as a context manager."""

    def __init__(self, app: Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._address = (host, port)
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL like ``http://127.0.0.1:PORT`` (only once started)."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.server_address[1])

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = _QuietServer(self._address, self._app)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
