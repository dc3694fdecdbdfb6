"""Origin checks over HTTPS trust what mitmproxy was told to trust upstream: a private CA given with
`ssl_verify_upstream_trusted_ca` (internal and staging APIs) verifies the check as it verifies the
client's own upstream connection. A real TLS server on loopback with a certificate from a CA made
here."""

from __future__ import annotations

import json
import sqlite3
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from pki import private_ca
from pollwatch.mitm.addon import PollWatch


class StuckStatus(BaseHTTPRequestHandler):
    """The job has moved on to running; its ETag has not."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"id": "e-1", "status": "running"}).encode()
        self.send_response(200)
        for name, value in (("Content-Type", "application/json"), ("ETag", '"v1"'), ("Cache-Control", "no-cache"),
                            ("Content-Length", str(len(body)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tls_origin(tmp_path):
    ca, cert, key = private_ca(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), StuckStatus)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca
    server.shutdown()
    server.server_close()


async def check_results(base: str, db: Path, **options) -> list[tuple[str, str | None]]:
    """A job created queued, then one 304 poll through the addon with verification on; the checks."""
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db=str(db), pollwatch_verify=True, **options)
        await tctx.cycle(addon, tflow.tflow(
            req=http.Request.make("POST", f"{base}/api/exports"),
            resp=http.Response.make(202, b'{"id": "e-1", "status": "queued"}',
                                    {"Location": "/api/exports/e-1", "ETag": '"v1"', "Cache-Control": "no-cache"})))
        await tctx.cycle(addon, tflow.tflow(
            req=http.Request.make("GET", f"{base}/api/exports/e-1", b"", {"If-None-Match": '"v1"'}),
            resp=http.Response.make(304, b"", {"ETag": '"v1"'})))
        await addon.verifier.drain()
        addon.done()
    with sqlite3.connect(db) as conn:
        return list(conn.execute("select result, detail from checks"))


async def test_a_check_trusts_the_ca_mitmproxy_was_given_for_upstream_servers(tls_origin, tmp_path):
    base, ca = tls_origin
    results = await check_results(base, tmp_path / "pw.sqlite", ssl_verify_upstream_trusted_ca=str(ca))
    assert results == [("etag-reused-across-states", None)]


async def test_without_that_ca_the_check_fails_on_the_certificate(tls_origin, tmp_path):
    base, _ = tls_origin
    [(result, detail)] = await check_results(base, tmp_path / "pw.sqlite")
    assert result == "check failed" and "CERTIFICATE_VERIFY_FAILED" in detail
