"""One text path out (issue 16): a secret in the traffic reaches nothing pollwatch writes.

The traffic plants secrets where no header name gives them away: a JWT as the job id (in the
status path and the body), an API key and a random token as path segments, a token in a URL
fragment, a password in URL userinfo, `token=`/`sig=` and signed-URL (`X-Amz-Credential`,
`X-Amz-Signature`) query values, a JWT in `X-Request-Id`. It goes through a real mitmdump (`-w`
recording too) and through `pollwatch analyze` of a HAR; then every output is searched for every
planted value, and read by detect-secrets' own detectors. An id that is a secret is shown as its
fingerprint, the same everywhere, so its job stays one job and two jobs stay two; ordinary ids
stay as they are. `pollwatch sanitize` keeps such jobs linked in the copy it writes.
"""

from __future__ import annotations

import base64
import json
import random
import re
import sqlite3
import string
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote_plus, urlsplit

import pytest
from click.testing import CliRunner
from detect_secrets import SecretsCollection
from detect_secrets.settings import transient_settings
from mitmproxy import io as mitm_io
from mitmproxy.addons.savehar import SaveHar

from pollwatch.cli.app import main
from pollwatch.core.redact import TEXT_LIMIT, fingerprint, safe_text
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.share.sanitize import sanitize
from pollwatch.share.secrets import Detectors
from pollwatch.sources.analysis import analyze_recordings
from helpers import QuietHandler, raw_request

_random = random.Random(16)


def _alnum(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_random.choice(alphabet) for _ in range(n))


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{_alnum(43)}"


JWT_JOB_A, JWT_JOB_B = _jwt({"sub": "job-" + _alnum(6)}), _jwt({"sub": "job-" + _alnum(6)})
SECRETS = {
    "jwt job id": JWT_JOB_A,
    "second jwt job id": JWT_JOB_B,
    "jwt request id": _jwt({"rid": _alnum(10)}),
    "fragment token": "frg" + _alnum(20),
    "api key segment": "sk_live_" + _alnum(24),
    "random segment": _alnum(40),
    "userinfo password": "pw" + _alnum(14),
    "token param": "tok" + _alnum(20),
    "sig param": "sig" + _alnum(20),
    "amz signature": _alnum(64, "0123456789abcdef"),
    "amz credential": "AKIA" + _alnum(16, string.ascii_uppercase + string.digits),
}
ORDINARY_IDS = ("f-1", "u-7", "q-1", "s3-1")
"""Job ids in the same traffic that are not secrets: shown as they are."""
STATES = ("queued", "running", "succeeded")


def _locations(origin: str) -> dict[str, str]:
    """Creating path -> the Location its 202 answer names (the status URL to poll)."""
    s = SECRETS
    return {
        "/jwt-a": f"/ops/{JWT_JOB_A}",
        "/jwt-b": f"/ops/{JWT_JOB_B}",
        "/frag": f"/ops/f-1#access_token={s['fragment token']}",
        "/key": f"/keys/{s['api key segment']}",
        "/random": f"/runs/{s['random segment']}",
        "/userinfo": f"http://ops:{s['userinfo password']}@{urlsplit(origin).netloc}/ops/u-7",
        "/query": f"/ops/q-1?token={s['token param']}&sig={s['sig param']}",
        "/amz": f"/ops/s3-1?X-Amz-Credential={s['amz credential']}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
                f"&X-Amz-Signature={s['amz signature']}",
    }


class _SecretOrigin(ThreadingHTTPServer):
    """Loopback API: POST answers 202 + Location; each status poll moves the job on a state and
    answers with a JWT request id and `max-age=30` (a finding, so log lines and comments exist)."""

    daemon_threads = True

    def __init__(self) -> None:
        server = self
        self.polls: dict[str, int] = {}

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.read_body()
                job_id = next((j for j in (JWT_JOB_A, JWT_JOB_B) if server.locations[self.path].endswith(j)), None)
                body = {"id": job_id, "status": "queued"} if job_id else {"status": "queued"}
                self.answer(202, json.dumps(body).encode(),
                            {"Content-Type": "application/json", "Location": server.locations[self.path]})

            def do_GET(self) -> None:
                seen = server.polls[self.path] = server.polls.get(self.path, 0) + 1
                job_id = next((j for j in (JWT_JOB_A, JWT_JOB_B) if j in self.path), None)
                body = {"status": STATES[min(seen, 2)]} | ({"id": job_id} if job_id else {})
                self.answer(200, json.dumps(body).encode(), {
                    "Content-Type": "application/json", "Cache-Control": "max-age=30",
                    "X-Request-Id": SECRETS["jwt request id"]})

        super().__init__(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.locations = _locations(self.origin)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def poll_url(self, location: str) -> str:
        """What a client polls: the Location without userinfo and fragment (never sent)."""
        parts = urlsplit(location)
        return f"{self.origin}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _database_outputs(db: Path, label: str, folder: Path) -> dict[str, str]:
    """Everything the read commands show of `db`, and its bytes (the WAL included)."""
    raw = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    jobs = json.loads(_cli("jobs", "--db", str(db), "--format", "json"))
    report = folder / f"{label}-report.html"
    _cli("report", "--db", str(db), "-o", str(report))
    return {
        f"{label} database bytes": raw.decode("latin-1"),
        f"{label} database dump": dump,
        f"{label} jobs --format json": _cli("jobs", "--db", str(db), "--format", "json"),
        f"{label} warnings --format json": _cli("warnings", "--db", str(db), "--format", "json"),
        f"{label} show --format json": "\n".join(_cli("show", j["key"], "--db", str(db), "--format", "json")
                                                 for j in jobs),
        f"{label} show text": "\n".join(_cli("show", j["key"], "--db", str(db)) for j in jobs),
        f"{label} report html": report.read_text(encoding="utf-8"),
    }


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """The secret-laden traffic through a real mitmdump (`-w` too), then as a HAR through analyze."""
    folder = tmp_path_factory.mktemp("secrets-out")
    server = _SecretOrigin()
    live_db, recording = folder / "live.sqlite", folder / "live.flows"
    try:
        with ProxyProcess(live_db, record=recording) as proxy:
            for create, location in server.locations.items():
                raw_request(proxy, "POST", server.origin + create)
                for _ in STATES:
                    raw_request(proxy, "GET", server.poll_url(location))
            assert proxy.stop() == 0
    finally:
        server.shutdown()
        server.server_close()
    with recording.open("rb") as f:
        flows = list(mitm_io.FlowReader(f).stream())
    assert len(flows) == 4 * len(server.locations)  # every flow recorded
    har = folder / "live.har"
    har.write_text(json.dumps(SaveHar().make_har(flows)), encoding="utf-8")
    return {"folder": folder, "db": live_db, "recording": recording, "har": har, "log": proxy.output(),
            "comments": "\n".join(f.comment for f in flows)}


@pytest.fixture(scope="module")
def outputs(traffic) -> dict[str, str]:
    """Every output of the live run and of `analyze` of the HAR, by name."""
    folder, har_db = traffic["folder"], traffic["folder"] / "har.sqlite"
    _cli("analyze", str(traffic["har"]), "--db", str(har_db))
    found = {"mitmdump log": traffic["log"], "flow comments": traffic["comments"]}
    return found | _database_outputs(traffic["db"], "live", folder) | _database_outputs(har_db, "har", folder)


OUTPUTS = ["mitmdump log", "flow comments",
           *(f"{side} {what}" for side in ("live", "har")
             for what in ("database bytes", "database dump", "jobs --format json", "warnings --format json",
                          "show --format json", "show text", "report html"))]


def _planted_in(text: str) -> list[str]:
    decoded = unquote_plus(text)
    return [name for name, value in SECRETS.items() if value in text or value in decoded]


@pytest.mark.parametrize("name", OUTPUTS)
def test_no_planted_secret_reaches_the_output(outputs, name):
    assert _planted_in(outputs[name]) == []


# --- detect-secrets: a second opinion on the same outputs ---------------------------------------

DETECT_SECRETS_PLUGINS = [{"name": "JwtTokenDetector"}, {"name": "AWSKeyDetector"}, {"name": "KeywordDetector"},
                          {"name": "StripeDetector"}, {"name": "Base64HighEntropyString", "limit": 4.5},
                          {"name": "HexHighEntropyString", "limit": 3.0}]


def detect_secrets(path: Path) -> list[str]:
    """The values detect-secrets' JWT, AWS key, keyword, Stripe and high-entropy detectors report
    in a file, and in the file's words each given as a quoted string (its entropy detectors read
    only quoted strings: a path segment in a log line would go unread)."""
    words = sorted({w for w in re.split(r"[\s\"'<>(){}\[\],;/?&#=:@|]+", path.read_text(encoding="utf-8")) if len(w) >= 8})
    quoted = path.with_name(f"{path.name}.words.json")
    quoted.write_text(json.dumps(words, indent=0), encoding="utf-8")
    found: set[str] = set()
    with transient_settings({"plugins_used": DETECT_SECRETS_PLUGINS}):
        for each in (path, quoted):
            collection = SecretsCollection()
            collection.scan_file(str(each))
            found |= {secret.secret_value or "" for _, secret in collection}
    return sorted(found)


@pytest.fixture(scope="module")
def detect_secrets_premise(traffic):
    """detect-secrets recognises the planted secrets in the traffic itself (so its silence on the
    outputs means something): the JWTs, the AWS key, the Stripe key, the random segment."""
    copy = traffic["folder"] / "traffic.json"  # detect-secrets chooses its keyword rules by file suffix
    copy.write_bytes(traffic["har"].read_bytes())
    found = detect_secrets(copy)
    recognised = {name for name, value in SECRETS.items()
                  if any(value in hit or (len(hit) >= 16 and hit in value) for hit in found)}  # a JWT: without its signature
    assert {"jwt job id", "jwt request id", "amz credential", "api key segment", "random segment"} <= recognised


TEXT_OUTPUTS = {"mitmdump log": "log.txt", "flow comments": "comments.txt",
                **{f"{side} {what}": f"{side}-{file}" for side in ("live", "har")
                   for what, file in (("database dump", "dump.sql"), ("jobs --format json", "jobs.json"),
                                      ("warnings --format json", "warnings.json"),
                                      ("show --format json", "show.json"), ("show text", "show.txt"),
                                      ("report html", "report.html"))}}


@pytest.fixture(scope="module")
def body_digests(traffic, outputs) -> set[str]:
    """The SHA-256 of each response body, which the database keeps: hex noise to the detectors, no secret."""
    digests = set()
    for db in (traffic["db"], traffic["folder"] / "har.sqlite"):
        with sqlite3.connect(db) as conn:
            digests |= {d for (d,) in conn.execute("select body_sha256 from polls where body_sha256 is not null")}
    return digests


@pytest.mark.parametrize("name", sorted(TEXT_OUTPUTS))
def test_detect_secrets_finds_nothing_in_the_output(outputs, detect_secrets_premise, body_digests, name, tmp_path):
    path = tmp_path / TEXT_OUTPUTS[name]
    path.write_text(outputs[name], encoding="utf-8")
    assert [hit for hit in detect_secrets(path) if hit not in body_digests] == []


# --- ids that are secrets: one fingerprint each, ordinary ids as they are -----------------------------

def _jobs(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("select * from jobs order by created_at").fetchall()


def test_each_job_whose_id_is_a_secret_is_stored_under_its_own_fingerprint(traffic):
    secret_ids = {fingerprint(SECRETS[n]) for n in ("jwt job id", "second jwt job id", "api key segment",
                                                     "random segment")}
    assert {j["job_id"] for j in _jobs(traffic["db"])} == secret_ids | set(ORDINARY_IDS)


def test_a_fingerprinted_job_keeps_its_status_url_and_polls_together(traffic):
    stand_in = fingerprint(JWT_JOB_A)
    [job] = [j for j in _jobs(traffic["db"]) if j["job_id"] == stand_in]
    with sqlite3.connect(traffic["db"]) as conn:
        polls = [u for (u,) in conn.execute("select url from polls where job_key = ? and kind = 'poll'", (job["key"],))]
    assert job["status_url"].endswith(f"/ops/{stand_in}") and json.loads(job["states"]) == list(STATES)
    assert len(polls) == 3 and all(u.endswith(f"/ops/{stand_in}") for u in polls)


def test_the_same_secret_always_gets_the_same_fingerprint_and_another_secret_another():
    text = safe_text(f"job {JWT_JOB_A} polled at /ops/{JWT_JOB_A}; job {JWT_JOB_B}")
    assert text == f"job {fingerprint(JWT_JOB_A)} polled at /ops/{fingerprint(JWT_JOB_A)}; job {fingerprint(JWT_JOB_B)}"
    assert fingerprint(JWT_JOB_A) != fingerprint(JWT_JOB_B)


@pytest.mark.parametrize("ordinary", [
    "e-1001", "1767323045", "nightly-export", "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "7C9E6679-7425-40DE-944B-E07FC1F90AE7", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "20260101T120000-ab12cd", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "operation-1591234567890-5a8b9c0d1e2f3-4a5b6c7d-8e9f0a1b", "projects/demo/locations/us/operations/op-123",
], ids=["short", "numeric", "slug", "uuid", "azure-guid", "traceparent", "session", "sha256", "gcp-operation",
        "operation-name"])
def test_an_ordinary_id_beside_a_secret_keeps_its_value(ordinary):
    text = f"GET /ops/{ordinary}?api-version=2024-01-01 id={ordinary} request {SECRETS['jwt request id']}"
    assert safe_text(text) == (f"GET /ops/{ordinary}?api-version=2024-01-01 id={ordinary} "
                               f"request {fingerprint(SECRETS['jwt request id'])}")


def test_a_token_in_a_url_fragment_is_redacted():
    assert safe_text("Location: /ops/1#access_token=abc123&state=xyz&view=full") == \
        "Location: /ops/1#access_token=REDACTED&state=REDACTED&view=full"


def test_a_relative_url_in_a_message_loses_its_query_secrets():
    assert safe_text("polled /ops/q-1?token=abc123&sig=def456&page=2") == \
        "polled /ops/q-1?token=REDACTED&sig=REDACTED&page=2"


def test_a_long_text_is_cut_after_its_secrets_are_redacted():
    text = safe_text(f"{'x' * (TEXT_LIMIT - 10)} {JWT_JOB_A} {'y' * 5 * TEXT_LIMIT}")
    assert len(text) < TEXT_LIMIT + 40 and "eyJ" not in text and text.endswith("more chars)")


def test_a_worker_event_naming_a_jwt_job_joins_that_job(traffic, tmp_path):
    """The worker log's fingerprint of an id is the jobs table's, so the two still meet."""
    db = tmp_path / "joined.sqlite"
    analyze_recordings([traffic["recording"]], db)
    [created] = [j["created_at"] for j in _jobs(db) if j["job_id"] == fingerprint(JWT_JOB_A)]
    log = tmp_path / "worker.jsonl"
    log.write_text(json.dumps({"ts": created + 0.2, "job_id": JWT_JOB_A, "state": "running"}) + "\n", encoding="utf-8")
    _cli("worker-log", str(log), "--db", str(db))
    with sqlite3.connect(db) as conn:
        [(job_key, job_id)] = conn.execute("select job_key, job_id from worker_events").fetchall()
        [(key,)] = conn.execute("select key from jobs where job_id = ?", (job_id,)).fetchall()
    assert job_id == fingerprint(JWT_JOB_A) and job_key == key


# --- sanitize: a job whose id is a secret, linked in the copy ---------------------------------------

@pytest.fixture(scope="module", params=["flows", "har"])
def sanitized(traffic, request) -> Path:
    """The recording through `pollwatch sanitize`, as a flow file and as a HAR."""
    copy = traffic["folder"] / f"shared.{request.param}"
    sanitize(traffic["recording"], copy, fmt=request.param)
    return copy


def _job_shapes(recording: Path, db: Path) -> list[tuple[str, list[str]]]:
    analyze_recordings([recording], db)
    return sorted((j["job_id"], json.loads(j["states"])) for j in _jobs(db))


def _readable(copy: Path) -> str:
    """A sanitized copy as text: a HAR as it is; a flow file as JSON, every part of every flow."""
    if copy.suffix == ".har":
        return copy.read_text(encoding="utf-8")
    with copy.open("rb") as f:
        return json.dumps([part for flow in mitm_io.FlowReader(f).stream() for part in (
            flow.request.pretty_url, flow.comment,
            *(bytes(m.headers).decode("latin-1") + (m.get_content(strict=False) or b"").decode("latin-1")
              for m in (flow.request, flow.response)))], indent=0)


def test_sanitize_keeps_each_job_whose_id_is_a_secret_linked_under_its_fingerprint(traffic, sanitized, tmp_path):
    original = _job_shapes(traffic["recording"], tmp_path / "original.sqlite")
    assert _job_shapes(sanitized, tmp_path / "copy.sqlite") == original


def test_sanitize_writes_no_planted_secret(sanitized):
    assert _planted_in(sanitized.read_bytes().decode("latin-1")) == _planted_in(_readable(sanitized)) == []


def test_detect_secrets_finds_nothing_in_a_sanitized_copy(sanitized, detect_secrets_premise, body_digests, tmp_path):
    readable = tmp_path / "shared.json"
    readable.write_text(_readable(sanitized), encoding="utf-8")
    assert [hit for hit in detect_secrets(readable) if hit not in body_digests] == []


def test_sanitize_and_scan_find_a_token_in_a_url_fragment():
    """The same query rule as the database's: a fragment's `access_token=` is a secret however short."""
    [span] = Detectors().spans("Location: /ops/f-1#access_token=abc123&view=full")
    assert (span.rule, span.detail) == ("sensitive-param", "access_token")


def test_a_password_holding_an_unencoded_at_sign_is_redacted_whole():
    """URL parsers take userinfo up to the last `@` before the host; so does the redaction."""
    assert safe_text("Location: http://ops:p@ss@api.test/ops/u-7") == "Location: http://REDACTED@api.test/ops/u-7"
    assert [s.rule for s in Detectors().spans("http://ops:p@ss@api.test/ops/u-7")] == ["url-userinfo"]


def test_a_secret_halved_by_the_first_cut_of_a_very_long_text_leaves_no_part():
    """Many secrets shrink to fingerprints, so what stood beyond the first cut (twice the limit) is
    kept; a secret halved there is dropped, not kept as a piece too short to look like a secret."""
    keys = [_alnum(60) for _ in range(2 * TEXT_LIMIT // 60 + 20)]
    text = safe_text(" ".join(keys))
    assert [k for k in keys if k[:8] in text] == []


def test_a_signed_url_percent_encoded_inside_a_query_value_loses_its_secrets():
    """A result link handed on as a query value keeps its own `?…&X-Amz-Signature=…`, encoded."""
    url = (f"/ops/s3-1?next=https%3A%2F%2Fs3.test%2Fr%3FX-Amz-Credential%3D{SECRETS['amz credential']}"
           f"%26X-Amz-Signature%3D{SECRETS['amz signature']}%26x-id%3DGetObject&page=2")
    expected = ("/ops/s3-1?next=https%3A%2F%2Fs3.test%2Fr%3FX-Amz-Credential%3DREDACTED"
                "%26X-Amz-Signature%3DREDACTED%26x-id%3DGetObject&page=2")
    assert safe_text(url) == Detectors().redact_text(url)[0] == expected
