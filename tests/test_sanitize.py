"""`pollwatch sanitize`: the copy analyses exactly like the original, and no planted secret survives.

Equivalence runs over every recorded demo scenario and the shared corpus of real cloud SDK
cassettes; the planted corpus (tests/data/planted.py) puts secrets in every place the issue
lists, in each input format, and searches the output's bytes for each of them.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main
from mitmproxy import io
from mitmproxy.io import har as mitmproxy_har

from pollwatch.sources.analysis import analyze_recordings
from pollwatch.share.pseudonymize import Pseudonymizer
from pollwatch.sources.readers import read
from pollwatch.share.redactor import redact_header_value
from pollwatch.share.sanitize import sanitize

HERE = Path(__file__).resolve().parent
RECORDINGS = HERE.parent / "recordings"
CORPUS = HERE.parent.parent / "shared" / "corpus" / "azure-sdk-cassettes"

sys.path.insert(0, str(HERE / "data"))
import planted  # tests/data/planted.py: the planted-secrets corpus


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory) -> dict[str, Path]:
    return planted.write_all(tmp_path_factory.mktemp("planted"))


def shape(path: Path, db: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Jobs (id, state sequence) in creation order and finding codes in time order."""
    analyze_recordings([path], db)
    with sqlite3.connect(db) as conn:
        jobs = [(j, json.loads(s)) for j, s in conn.execute(
            "select job_id, states from jobs order by created_at, cast(substr(key, instr(key, '/') + 1) as integer)")]
        codes = [r[0] for r in conn.execute("select code from findings order by ts, code")]
    return jobs, codes


def assert_equivalent(original: Path, tmp_path: Path, *, fmt: str = "flows") -> None:
    """Plain: the same jobs, ids included. Pseudonymized: the same shape, every job id replaced."""
    jobs, codes = shape(original, tmp_path / "original.sqlite")
    plain = tmp_path / f"plain.{fmt}"
    sanitize(original, plain, fmt=fmt)
    assert shape(plain, tmp_path / "plain.sqlite") == (jobs, codes)

    pseudo = tmp_path / f"pseudo.{fmt}"
    sanitize(original, pseudo, fmt=fmt, pseudonymize=True)
    pseudo_jobs, pseudo_codes = shape(pseudo, tmp_path / "pseudo.sqlite")
    assert [s for _, s in pseudo_jobs] == [s for _, s in jobs] and pseudo_codes == codes
    assert not {j for j, _ in jobs} & {j for j, _ in pseudo_jobs}


# --- equivalence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("recording", sorted(RECORDINGS.glob("*.flows")), ids=lambda p: p.stem)
def test_recording_analyses_the_same_after_sanitizing(recording, tmp_path):
    assert_equivalent(recording, tmp_path)
    expected = json.loads(recording.with_suffix(".expected.json").read_text())
    jobs, codes = shape(tmp_path / "plain.flows", tmp_path / "again.sqlite")
    assert jobs == [(j["job_id"], j["states"]) for j in expected["jobs"]] and set(codes) == set(expected["codes"])


@pytest.mark.parametrize("name", ["shared-cache", "wrong-env", "etag-stuck"])
def test_recording_analyses_the_same_as_sanitized_har(name, tmp_path):
    assert_equivalent(RECORDINGS / f"{name}.flows", tmp_path, fmt="har")


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}; corpus equivalence skipped")
@pytest.mark.parametrize("cassette", sorted(CORPUS.glob("*.yaml")) or [CORPUS], ids=lambda p: p.stem)
def test_corpus_cassette_analyses_the_same_after_sanitizing(cassette, tmp_path):
    assert_equivalent(cassette, tmp_path)


@pytest.mark.parametrize("fmt", ["har", "flows"])
def test_har_input_keeps_browser_cache_marks_and_connections(tmp_path, fmt):
    """HAR to HAR keeps `_fromCache` and `connection`; in flow files they ride in the flow's
    metadata, which the adapter reads."""
    api = "https://app.test/api/exports"

    def entry(url, status, body, *, headers=(), second=0, method="GET", cached=None, conn="7"):
        e = {"startedDateTime": f"2026-11-28T10:00:0{second}.000Z", "time": 20, "connection": conn,
             "request": {"method": method, "url": url, "httpVersion": "HTTP/1.1", "headers": []},
             "response": {"status": status, "statusText": "", "httpVersion": "HTTP/1.1",
                          "headers": [{"name": n, "value": v} for n, v in headers],
                          "content": {"mimeType": "application/json", "text": json.dumps(body)}}}
        return e | ({"_fromCache": cached} if cached else {})

    source = tmp_path / "browser.har"
    source.write_text(json.dumps({"log": {"version": "1.2", "entries": [
        entry(api, 202, {"id": "e-1", "status": "queued"}, method="POST", headers=[("location", "/api/exports/e-1")]),
        entry(api + "/e-1", 200, {"status": "running"}, headers=[("cache-control", "max-age=60")], second=1),
        entry(api + "/e-1", 200, {"status": "running"}, second=2, cached="memory"),
        entry(api + "/e-1", 200, {"status": "succeeded"}, headers=[("cache-control", "no-store")], second=3,
              conn="8")]}}))
    assert_equivalent(source, tmp_path, fmt=fmt)
    assert "status-from-browser-cache" in shape(tmp_path / f"plain.{fmt}", tmp_path / "check.sqlite")[1]


# --- planted secrets --------------------------------------------------------------------------------

def searchable(output: Path, fmt: str) -> list[bytes]:
    """The output's raw bytes, URL-decoded, and for flow files every decoded part of every flow."""
    raw = output.read_bytes()
    texts = [raw, unquote_plus(raw.decode("utf-8", "replace")).encode()]
    if fmt == "flows":
        with output.open("rb") as f:
            for flow in io.FlowReader(f).stream():
                texts += [flow.request.pretty_url.encode(), flow.comment.encode()]
                for message in (flow.request, flow.response):
                    texts += [message.content or b"", bytes(message.headers)]
    return texts


@pytest.mark.parametrize("kind", ["flows", "har", "cassette"])
@pytest.mark.parametrize("fmt", ["flows", "har"])
@pytest.mark.parametrize("pseudonymize", [False, True], ids=["plain", "pseudonymized"])
def test_no_planted_secret_survives(planted_files, kind, fmt, pseudonymize, tmp_path):
    output = tmp_path / f"shared.{fmt}"
    result = sanitize(planted_files[kind], output, fmt=fmt, pseudonymize=pseudonymize)
    texts = searchable(output, fmt)
    leaked = [name for name, value in planted.SECRETS.items() if any(value.encode() in t for t in texts)]
    assert leaked == []
    assert len(result.hits) >= len(planted.SECRETS) // 2


@pytest.mark.parametrize("kind", ["flows", "har", "cassette"])
def test_planted_recording_keeps_its_job_and_structure(planted_files, kind, tmp_path):
    """JSON stays JSON, HAR stays HAR for mitmproxy's own reader, flows decode strictly; the job's
    status URL lost its signature but the job, its states and its request id are intact."""
    flows_out, har_out = tmp_path / "shared.flows", tmp_path / "shared.har"
    sanitize(planted_files[kind], flows_out)
    sanitize(planted_files[kind], har_out)
    assert shape(flows_out, tmp_path / "a.sqlite")[0] == [("e-7001", ["queued", "running", "succeeded"])]
    assert shape(har_out, tmp_path / "b.sqlite")[0] == [("e-7001", ["queued", "running", "succeeded"])]
    with flows_out.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    for flow in flows:
        for message in (flow.request, flow.response):
            content = message.get_content(strict=True)
            assert "content-encoding" not in message.headers
            if "content-length" in message.headers:
                assert int(message.headers["content-length"]) == len(content)
            if "json" in message.headers.get("content-type", ""):
                json.loads(content)
    create = flows[0]
    assert create.response.headers["Location"] == "/api/exports/e-7001?sig=REDACTED"
    assert create.request.headers["Authorization"] == "Bearer REDACTED"
    assert create.request.headers["Cookie"] == "sid=REDACTED; pref=REDACTED"
    assert create.response.headers["Set-Cookie"] == "session=REDACTED; Path=/; HttpOnly"
    assert create.request.headers["X-Request-Id"] == "req-5001"
    assert create.response.headers["Cache-Control"] == "no-store"
    profile = json.loads(flows[3].response.content)
    assert profile["user"]["profile"]["address"] == {"street": "REDACTED", "city": "REDACTED"}
    assert profile["status"] == "active" and profile["id"] == "u-9001"
    for entry in json.loads(har_out.read_text())["log"]["entries"]:
        assert mitmproxy_har.request_to_flow(entry).request.method == entry["request"]["method"]
    assert read(har_out).kind == "har"


def test_client_addresses_are_not_shared(planted_files, tmp_path):
    sanitize(planted_files["flows"], tmp_path / "shared.flows")
    with (tmp_path / "shared.flows").open("rb") as f:
        peers = {flow.client_conn.peername for flow in io.FlowReader(f).stream()}
    assert peers == {("10.0.0.1", 50123)}
    assert b"192.168.7.23" not in (tmp_path / "shared.flows").read_bytes()


def test_ids_of_jobs_the_tracker_no_longer_remembers_are_still_known():
    """A long recording's first jobs leave the tracker's memory (max_jobs) before it ends; their
    ids must still be kept from redaction and replaced by --pseudonymize."""
    from pollwatch.core.config import Config
    from pollwatch.share.pseudonymize import known_ids
    from pollwatch.share.secrets import Detectors

    flows = []
    for name in ("healthy-google", "healthy"):  # g-1001 is named only where the core finds it
        with open(RECORDINGS / f"{name}.flows", "rb") as file:
            flows += io.FlowReader(file).stream()
    everything = known_ids(flows, Detectors())
    assert known_ids(flows, Detectors(), Config(max_jobs=1)) == everything
    assert {"e-1001", "g-1001"} <= everything


def test_pseudonyms_are_consistent_shaped_and_unguessable():
    first = Pseudonymizer(["e-1001", "8d5cbd398da847bfbcafa13bce7daeb1", "42"], ["tenant.vault.azure.net"])
    again = Pseudonymizer(["e-1001"], [])
    job = first.id("e-1001")
    assert job == first.id("E-1001".lower()) and job != "e-1001" and job != again.id("e-1001")
    assert job[1] == "-" and job[0].isalpha() and job[2:].isdigit()
    assert all(c in "0123456789abcdef" for c in first.id("8d5cbd398da847bfbcafa13bce7daeb1"))
    assert first.url("https://tenant.vault.azure.net/jobs/42?id=e-1001").startswith("https://h")
    assert ".azure.net/jobs/" in first.url("https://tenant.vault.azure.net/jobs/42")
    assert first.text("see tenant.vault.azure.net and e-1001") == f"see {first.host('tenant.vault.azure.net')} and {job}"
    assert first.host("127.0.0.1") == "127.0.0.1" and first.host("api.test") == "api.test"
    tiny = Pseudonymizer([str(n) for n in range(1, 12)], [])
    assert len({tiny.id(str(n)) for n in range(1, 12)}) == 11  # tiny ids widen rather than collide


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("Authorization", "Bearer abc.def", "Bearer REDACTED"),
    ("authorization", "AWS4-HMAC-SHA256 Credential=x, Signature=y", "AWS4-HMAC-SHA256 REDACTED"),
    ("Cookie", "a=1; b=2", "a=REDACTED; b=REDACTED"),
    ("Set-Cookie", "id=7; Path=/; Secure", "id=REDACTED; Path=/; Secure"),
    ("X-Api-Key", "k", "REDACTED"),
])
def test_sensitive_header_values_keep_what_is_not_secret(name, value, expected):
    assert redact_header_value(name, value) == expected
    assert redact_header_value(name, expected) == expected  # idempotent: a sanitized file scans clean


# --- rules, dry run, refusals ------------------------------------------------------------------------

def test_custom_rules_redact_more(planted_files, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('headers = ["X-Request-Id"]\nkeys = ["$.user.profile.card", "status"]\n'
                     'patterns = ["u-\\\\d{4}"]\n')
    output = tmp_path / "shared.flows"
    result = CliRunner().invoke(main, ["sanitize", str(planted_files["flows"]), "-o", str(output), "--rules",
                                                   str(rules)])
    assert result.exit_code == 0, result.output
    raw = output.read_bytes()
    assert b"req-5001" not in raw and b"u-9001" not in raw and b'"active"' not in raw


def test_dry_run_lists_what_and_where_without_writing(planted_files, tmp_path):
    output = tmp_path / "never.flows"
    result = CliRunner().invoke(main, ["sanitize", str(planted_files["flows"]), "-o", str(output), "--dry-run",
                                                   "--format", "json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    where = {(h["flow"], h["location"]) for h in hits}
    assert {(0, "request.header Authorization"), (3, "response.json $.user.email"), (3, "request.query token"),
            (4, "request.form password"), (5, "request.multipart api_key")} <= where
    assert all(h["file"] == str(planted_files["flows"]) for h in hits)
    assert not any(v in result.output for v in planted.SECRETS.values())
    assert not output.exists()


def test_refuses_to_overwrite_its_input(tmp_path):
    source = tmp_path / "in.flows"
    source.write_bytes((RECORDINGS / "healthy.flows").read_bytes())
    before = source.read_bytes()
    result = CliRunner().invoke(main, ["sanitize", str(source), "-o", str(tmp_path / "." / "in.flows")])
    assert result.exit_code == 1 and "is the input file" in result.output
    assert source.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["missing.flows", "-o", "x.flows"], "no such file"),
    (["{rules}", "-o", "x.flows"], "not a HAR file"),
    (["{source}", "-o", "x.flows", "--rules", "{rules}"], "not a valid rules file"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"headers": "not a list", "oops": 1}')
    source = RECORDINGS / "healthy.flows"
    argv = [a.format(rules=rules, source=source) for a in args]
    result = CliRunner().invoke(main, ["sanitize", *argv])
    assert result.exit_code == 1 and message in result.output
    assert result.output.strip().count("\n") == 0
