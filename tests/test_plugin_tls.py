"""The plugin against a local HTTPS test server with its own CA: mitmproxy options from the ini
(`pollwatch_mitmproxy_options`) reach the proxy, so it can trust that CA upstream."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytest_plugins = ["pytester"]


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
                ) -> x509.Certificate:
    """A CA (no issuer) or a certificate for 127.0.0.1 signed by `issuer`, valid for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name(subject)).public_key(key.public_key())
               .issuer_name(name(issuer[0] if issuer else subject)).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True))
    if issuer is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_pki(folder: Path) -> tuple[Path, Path, Path]:
    """ca.pem, and server.pem + server.key for 127.0.0.1 signed by it."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("pollwatch test CA", ca_key, None)
    server = certificate("127.0.0.1", server_key, ("pollwatch test CA", ca_key))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


def test_mitmproxy_options_from_the_ini_let_the_proxy_trust_a_local_test_servers_ca(pytester, tmp_path):
    ca, cert, key = write_pki(tmp_path)
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
