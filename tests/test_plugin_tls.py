"""The plugin against a local HTTPS test server with its own CA: mitmproxy options from the ini
(`pollwatch_mitmproxy_options`) reach the proxy, so it can trust that CA upstream."""

from __future__ import annotations

from pki import private_ca

pytest_plugins = ["pytester"]


def test_mitmproxy_options_from_the_ini_let_the_proxy_trust_a_local_test_servers_ca(pytester, tmp_path):
    ca, cert, key = private_ca(tmp_path)
    pytester.makeini(f"[pytest]\npollwatch_mitmproxy_options =\n    ssl_verify_upstream_trusted_ca={ca}\n")
    pytester.makepyfile(f'''
import http.server, ssl, threading
import httpx


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_https(pollwatch_proxy):
    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain({str(cert)!r}, {str(key)!r})
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    trust = ssl.create_default_context(cafile=str(pollwatch_proxy.ca_bundle))
    with httpx.Client(proxy=pollwatch_proxy.url, verify=trust, trust_env=False, timeout=10) as client:
        answer = client.get(f"https://127.0.0.1:{{server.server_address[1]}}/x")
    server.shutdown()
    assert (answer.status_code, answer.text) == (200, "ok")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
