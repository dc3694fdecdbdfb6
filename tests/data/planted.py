"""A small recording with secrets planted in every place `pollwatch sanitize` must clean, written
as a mitmproxy flow file, a HAR file and a VCR cassette (same exchanges in each).

Every planted value is unique and made of characters no format escapes, so a leak shows up in a
plain byte search of the output. The recording also holds one real job (202 + polls), so the
sanitized copy can be analysed like the original.

    python tests/data/planted.py OUTDIR     # writes planted.flows, planted.har, planted.yaml
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import yaml

START = 1_795_881_600.0  # 2026-11-28 00:00 UTC


def _jwt(subject: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': subject})}.c2lnUGxhbnRlZDAwMXh5eg"


SECRETS: dict[str, str] = {
    # headers, any case, HTTP/1 and HTTP/2 style
    "authorization_jwt": _jwt("planted-user-001"),
    "h2_authorization": "h2BearerTok7Kq2Lx9Pz4Wm",
    "x_api_key": "pkQx7Lm2Zr9Tb4Wn6Yc8Vd",
    "x_auth_token": "atk9Hf3Kq7Zp2Lm8Xr4Tn6",
    "proxy_basic": base64.b64encode(b"proxyuser:proxyPw7Zq").decode().rstrip("="),
    "cookie_sid": "sidVal7Hq2Lx9Pz4Km",
    "cookie_pref": "prefVal3Wn8Rt5Yb",
    "set_cookie": "sessVal3Jk8Lp2Qw7Rt",
    "csrf": "csrfTok5Gh2Jk9Lm3Np",
    "xsrf": "xsrfTok8Vb3Nm6Qw1Er",
    "custom_secret": "custSec4Tz8Qp2Wx6Lm",
    "session_header": "sessHdr2Kq7Lx9Pz5Hb",
    "signature_header": "sigHdr8Mn3Bv6Cx1Zq",
    "password_header": "pwHdr5Rt7Yu2Io9Lk",
    "credential_header": "credHdr3Df6Gh9Jk2Ws",
    "entropy_header": "Zq8Lm3Xp7Rt2Wn5Kd9Hb4Vc6",
    "referer_password": "refPw4KxQm9",
    # query parameters
    "q_token": "qTok4Hj7Kl2Mn9",
    "q_access_token": "qAcc8Jk3Lp6Zx",
    "q_code": "qCode5Fg8Hj2",
    "q_state": "qState3Kl9Mn4",
    "q_client_secret": "qCs7Xc2Vb8Nm",
    "q_id_token": "qIdt6Rt3Yu8Io",
    "q_refresh_token": "qRef2As5Df8Gh",
    "q_saml": "qSaml9Zx4Cv7Bn",
    "q_sig": "qSig3Qw6Er9Ty",
    "q_signature": "qSgn8Ui2Op5As",
    "q_amz_signature": "qAmzSig4Df7Gh1Jk",
    "q_amz_credential": "qAmzCred6Kl9Zx2Cv",
    "q_mixed_api_key": "qApiKey5Bn8Mq3Wx",
    "location_sig": "locSig9Kq2Wd5Rt",
    # URL userinfo
    "userinfo_password": "uiPw9XqLm4",
    # form and multipart bodies
    "form_password": "formPw3QzHk8",
    "form_client_secret": "formCs8LpWn2",
    "form_code": "formCode5JkTy",
    "multipart_password": "mpPw6Hy2KtVb",
    "multipart_api_key": "mpKey9Lr4WdXs",
    "multipart_email": "carol.planted@corp.example",
    # JSON, nested
    "json_email": "alice.planted@corp.example",
    "json_phone": "+1-555-0199-7777",
    "json_ssn": "219-09-9999",
    "json_card": "4111111111111111",
    "json_iban": "DE89370400440532013000",
    "json_street": "42 Plantedweg",
    "json_city": "Plantville",
    "json_password": "jsonPw8Hk2LqZ",
    "json_token": "jsonTok3Mn7BvX",
    "json_api_key": "jsonKey6Zx1CvB",
    "json_secret": "jsonSec9Qw4ErT",
    "json_authorization": "jsonAuth5Ty8UiO",
    "json_callback_password": "cbPw7Zq3Lm",
    "json_callback_token": "cbTok2LxRt",
    "json_note_email": "dave.planted@corp.example",
    "json_jwt": _jwt("planted-json-002"),
    # free text
    "text_bearer": "txtBearer9Kd2Lw7Qm4Zp",
    "text_email": "bob.planted@corp.example",
    "text_entropy": "hE7qL2mZ9xT4vB8nR3kW6yPaQ1sD",
    "text_password": "txtPw4Hd8KqM",
    "text_jwt": _jwt("planted-text-003"),
    "aws_key_id": "AKIAPLANTED7EXAMPLE1",
}
S = SECRETS


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes = b""
    request_body: bytes = b""
    http2: bool = False
    cookies: list[tuple[str, str]] = field(default_factory=list)  # HAR repeats them in `cookies` lists


def exchanges(userinfo: bool) -> list[Exchange]:
    """The planted traffic; `userinfo` puts credentials into request URLs (HAR and cassettes can
    hold them, mitmproxy flows cannot)."""
    api = f"https://alice:{S['userinfo_password']}@api.example.test" if userinfo else "https://api.example.test"
    query = "&".join([
        f"token={S['q_token']}", f"access_token={S['q_access_token']}", f"code={S['q_code']}",
        f"state={S['q_state']}", f"client_secret={S['q_client_secret']}", f"id_token={S['q_id_token']}",
        f"refresh_token={S['q_refresh_token']}", f"SAMLResponse={S['q_saml']}", f"sig={S['q_sig']}",
        f"signature={S['q_signature']}", f"X-Amz-Signature={S['q_amz_signature']}",
        f"X-Amz-Credential={S['q_amz_credential']}", f"Api_Key={S['q_mixed_api_key']}", "api-version=2024-01-01"])
    status_url = f"/api/exports/e-7001?sig={S['location_sig']}"
    boundary = "plantedBoundary42"
    multipart = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{S['multipart_password']}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"api_key\"\r\n\r\n{S['multipart_api_key']}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\ncontact {S['multipart_email']}\r\n"
        f"--{boundary}--\r\n").encode()
    profile = {
        "id": "u-9001", "status": "active",
        "user": {"email": S["json_email"], "profile": {
            "phone": S["json_phone"], "ssn": S["json_ssn"], "card": S["json_card"], "iban": S["json_iban"],
            "address": {"street": S["json_street"], "city": S["json_city"]},
            "credentials": [{"password": S["json_password"]}]}},
        "Token": S["json_token"], "api_key": S["json_api_key"], "clientSecret": S["json_secret"],
        "AUTHORIZATION": S["json_authorization"],
        "callback": f"https://cb:{S['json_callback_password']}@hooks.example.test/cb?token={S['json_callback_token']}",
        "note": f"ping {S['json_note_email']} when done", "session": {"jwt": S["json_jwt"]},
    }
    text = (f"Call the API with Bearer {S['text_bearer']} or mail {S['text_email']}.\n"
            f"debug key={S['text_entropy']}\npassword={S['text_password']}\nid_token {S['text_jwt']}\n"
            f"aws {S['aws_key_id']}\n").encode()
    json_type = [("Content-Type", "application/json")]
    return [
        Exchange("POST", f"{api}/api/exports", [
            ("Authorization", f"Bearer {S['authorization_jwt']}"), ("X-API-KEY", S["x_api_key"]),
            ("x-Auth-Token", S["x_auth_token"]), ("Proxy-Authorization", f"Basic {S['proxy_basic']}"),
            ("Cookie", f"sid={S['cookie_sid']}; pref={S['cookie_pref']}"), ("X-CSRF-Token", S["csrf"]),
            ("x-xsrf-token", S["xsrf"]), ("X-Custom-Secret", S["custom_secret"]), ("X-Session", S["session_header"]),
            ("X-Signature", S["signature_header"]), ("X-Client-Password", S["password_header"]),
            ("X-Credential", S["credential_header"]), ("X-Trace-Blob", S["entropy_header"]),
            ("Referer", f"https://me:{S['referer_password']}@app.example.test/start"), ("X-Request-Id", "req-5001"),
        ], 202, [*json_type, ("Location", status_url), ("Cache-Control", "no-store"),
                 ("Set-Cookie", f"session={S['set_cookie']}; Path=/; HttpOnly")],
            json.dumps({"id": "e-7001", "status": "queued"}).encode(),
            cookies=[("sid", S["cookie_sid"]), ("pref", S["cookie_pref"])]),
        Exchange("GET", f"{api}{status_url}", [("authorization", f"Bearer {S['h2_authorization']}"),
                                               ("x-api-key", S["x_api_key"])],
                 200, [("content-type", "application/json"), ("cache-control", "no-store")],
                 json.dumps({"id": "e-7001", "status": "running"}).encode(), http2=True),
        Exchange("GET", f"{api}{status_url}", [("Accept", "application/json")], 200,
                 [*json_type, ("Cache-Control", "no-store")],
                 json.dumps({"id": "e-7001", "status": "succeeded", "owner": {"email": S["json_email"]}}).encode()),
        Exchange("GET", f"{api}/api/callback?{query}", [("Accept", "*/*")], 200, [*json_type],
                 json.dumps(profile, indent=2).encode()),
        Exchange("POST", f"{api}/oauth/token", [("Content-Type", "application/x-www-form-urlencoded")], 200,
                 [("Content-Type", "text/plain; charset=utf-8")], text,
                 request_body=(f"grant_type=authorization_code&code={S['form_code']}&client_secret="
                               f"{S['form_client_secret']}&password={S['form_password']}&username=alice").encode()),
        Exchange("POST", f"{api}/upload", [("Content-Type", f"multipart/form-data; boundary={boundary}")], 201,
                 [*json_type], json.dumps({"uploaded": True}).encode(), request_body=multipart),
    ]


def write_flows(path: Path) -> Path:
    from mitmproxy import http, io
    from mitmproxy.test import tflow

    with path.open("wb") as f:
        writer = io.FlowWriter(f)
        for i, ex in enumerate(exchanges(userinfo=False)):
            request = http.Request.make(ex.method, ex.url, ex.request_body, _fields(ex.request_headers))
            response = http.Response.make(ex.status, ex.response_body, _fields(ex.response_headers))
            if ex.http2:
                request.http_version = response.http_version = "HTTP/2.0"
            flow = tflow.tflow(req=request, resp=response)
            flow.request.timestamp_start = flow.request.timestamp_end = START + i
            flow.response.timestamp_start = flow.response.timestamp_end = START + i + 0.05
            flow.client_conn.peername = ("192.168.7.23", 50123)
            flow.comment = f"captured by {S['text_email']}"
            writer.add(flow)
    return path


def _fields(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in pairs]


def write_har(path: Path) -> Path:
    from datetime import datetime

    def pairs(items: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"name": k, "value": v} for k, v in items]

    entries = []
    for i, ex in enumerate(exchanges(userinfo=True)):
        from urllib.parse import parse_qsl, urlsplit
        request = {"method": ex.method, "url": ex.url, "httpVersion": "h2" if ex.http2 else "HTTP/1.1",
                   "headers": pairs(ex.request_headers), "cookies": pairs(ex.cookies),
                   "queryString": pairs(parse_qsl(urlsplit(ex.url).query)), "headersSize": -1, "bodySize": 0}
        if ex.request_body:
            content_type = {k.lower(): v for k, v in ex.request_headers}.get("content-type", "")
            request["postData"] = {"mimeType": content_type, "text": ex.request_body.decode(),
                                   "params": pairs(parse_qsl(ex.request_body.decode()))
                                   if "urlencoded" in content_type else []}
        response_type = {k.lower(): v for k, v in ex.response_headers}.get("content-type", "")
        entries.append({
            "startedDateTime": datetime.fromtimestamp(START + i, UTC).isoformat(), "time": 50,
            "request": request,
            "response": {"status": ex.status, "statusText": "OK", "httpVersion": "HTTP/1.1",
                         "headers": pairs(ex.response_headers), "cookies": [], "redirectURL": "",
                         "content": {"size": len(ex.response_body), "mimeType": response_type,
                                     "text": ex.response_body.decode()}, "headersSize": -1, "bodySize": -1},
            "cache": {}, "timings": {"send": 0, "wait": 50, "receive": 0}, "connection": "4711",
            "_initiator": {"type": "script", "url": f"https://app.example.test/app.js?token={S['q_token']}"},
        })
    document = {"log": {"version": "1.2", "creator": {"name": "planted", "version": "1"},
                        "pages": [{"id": "page_1", "title": f"https://app.example.test/?access_token={S['q_access_token']}"}],
                        "entries": entries}}
    path.write_text(json.dumps(document, indent=2))
    return path


def write_cassette(path: Path) -> Path:
    interactions = []
    for ex in exchanges(userinfo=True):
        def grouped(items: list[tuple[str, str]]) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for k, v in items:
                out.setdefault(k, []).append(v)
            return out
        interactions.append({
            "request": {"body": ex.request_body.decode() or None, "headers": grouped(ex.request_headers),
                        "method": ex.method, "uri": ex.url},
            "response": {"body": {"string": ex.response_body.decode()}, "headers": grouped(ex.response_headers),
                         "status": {"code": ex.status, "message": "OK"}},
        })
    path.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}, sort_keys=False))
    return path


WRITERS = {"flows": write_flows, "har": write_har, "cassette": write_cassette}
SUFFIX = {"flows": ".flows", "har": ".har", "cassette": ".yaml"}


def write_all(folder: Path) -> dict[str, Path]:
    return {kind: write(folder / f"planted{SUFFIX[kind]}") for kind, write in WRITERS.items()}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, written in write_all(target).items():
        print(kind, written)
