"""Properties that hold for any input (issue 16), checked with hypothesis over generated flows, HAR
files, cassettes, flow files and databases:

- no exception escapes: the addon passes every flow on, a command succeeds or says why in one line;
- no flow is altered: what the client and the server see is what they sent;
- every output is valid UTF-8: the database, the report, the sanitized copy, the command's words;
- no planted secret (a bearer token, a cookie, an access_token in the URL) reaches any output;
- every input is handled in bounded time (each example has a deadline).

Examples are derived from the test's name (`derandomize`), so a run in CI is a run on a laptop,
and nothing is kept between runs; the whole module takes well under two minutes on two cores.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from helpers import RECORDINGS
from pollwatch.cli.app import main
from pollwatch.mitm.addon import PollWatch
from pollwatch.sources.analysis import analyze_recordings

PLANTED = "pwPlanted7Qx2Vb9Lk4Zt8Rn3"
"""A secret put where credentials go (Authorization, Cookie, ?access_token=, URL userinfo); it
must appear in no output."""


def bounded(max_examples: int, deadline_s: float = 10.0) -> settings:
    """Reproducible (examples derived from the test), nothing stored, each example under a deadline
    generous enough for a loaded CI machine, yet far below what an unbounded input costs."""
    return settings(max_examples=max_examples, deadline=timedelta(seconds=deadline_s), derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# --- strategies ------------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(["", "\udc80", "\x00\x1b[2J", "é\u202e", "1e400", "NaN", "null", "41688-01-01T00:00:00Z",
                            "Mon, 01 Mar 41688 10:00:00 GMT", "http:///no-host", "http://[::1", "a" * 300])
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT, st.text(st.characters(categories=["Cs", "Cc", "Zl"]), max_size=4))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                   st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=10)
"""Any JSON-like value, the hostile ones included: the wrong type wherever a field is expected."""

STATES = st.sampled_from(["queued", "running", "succeeded", "failed", "Running", "done", "weird", ""])
JOB_IDS = st.sampled_from(["j-1", "j-2", "op-1", "\udc80", "a/b", "x" * 80])
BODY = st.one_of(
    st.builds(lambda job, state: json.dumps({"id": job, "status": state}, ensure_ascii=False), JOB_IDS, STATES),
    st.builds(lambda job: json.dumps({"operation": {"name": job, "done": False}}), JOB_IDS),
    TEXT,
)
PATHS = st.sampled_from(["/v1/jobs", "/v1/jobs/j-1", "/v1/jobs/j-2", "/operations/op-1", "/status", "/", "/%ff"])
HOSTS = st.sampled_from(["api.example.test", "127.0.0.1:8080", "[::1]:9000", "xn--bcher-kva.example"])
HEADER_NAMES = st.sampled_from(["location", "cache-control", "content-type", "date", "etag", "retry-after",
                                "content-encoding", "expires", "age", "x-cache", "operation-location", "x-junk"])
HEADER_VALUES = st.one_of(st.sampled_from(["max-age=30", "no-store", "application/json", "gzip", "br", "W/\"1\"",
                                           "/v1/jobs/j-1", "https://api.example.test/v1/jobs/j-2", "120", "-1"]), TEXT)
HEADERS = st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5)
STATUSES = st.sampled_from([200, 201, 202, 204, 303, 304, 404, 410, 500, 0])
TIMES = st.datetimes(datetime(2001, 1, 1), datetime(2099, 1, 1), timezones=st.just(UTC))
SECRET_HEADERS = [("Authorization", f"Bearer {PLANTED}"), ("Cookie", f"session={PLANTED}")]


def secret_url(host: str, path: str, userinfo: bool) -> str:
    return f"https://{'user:' + PLANTED + '@' if userinfo else ''}{host}{path}?access_token={PLANTED}"


def har_entry() -> st.SearchStrategy:
    request = st.fixed_dictionaries({
        "method": st.sampled_from(["GET", "POST", "DELETE"]),
        "url": st.builds(secret_url, HOSTS, PATHS, st.booleans()),
        "headers": st.builds(lambda pairs: [{"name": n, "value": v} for n, v in [*SECRET_HEADERS, *pairs]], HEADERS),
    })
    response = st.fixed_dictionaries({
        "status": STATUSES,
        "headers": st.builds(lambda pairs: [{"name": n, "value": v} for n, v in pairs], HEADERS),
        "content": st.fixed_dictionaries({"text": BODY, "mimeType": st.just("application/json")}),
    })
    return st.fixed_dictionaries(
        {"startedDateTime": TIMES.map(lambda t: t.isoformat()), "time": st.floats(0, 5000), "request": request,
         "response": response},
        optional={"_fromCache": st.booleans(), "connection": st.sampled_from(["1", "2"]), "_extra": JSON})


def cassette_interaction() -> st.SearchStrategy:
    request = st.fixed_dictionaries({
        "method": st.sampled_from(["GET", "POST", "PUT"]),
        "uri": st.builds(secret_url, HOSTS, PATHS, st.booleans()),
        "headers": st.builds(lambda pairs: {n: [v] for n, v in [*SECRET_HEADERS, *pairs]}, HEADERS),
        "body": st.none() | BODY,
    })
    response = st.fixed_dictionaries({
        "status": st.fixed_dictionaries({"code": STATUSES, "message": TEXT}),
        "headers": st.builds(lambda pairs, date: {**{n: [v] for n, v in pairs}, "date": [date]}, HEADERS,
                             TIMES.map(lambda t: t.strftime("%a, %d %b %Y %H:%M:%S GMT"))),
        "body": st.fixed_dictionaries({"string": BODY}),
    })
    return st.fixed_dictionaries({"request": request, "response": response}, optional={"extra": JSON})


def places(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON-like document: the key or index path to each value below the top."""
    found = [path] if path else []
    children = document.items() if isinstance(document, dict) else enumerate(document) \
        if isinstance(document, list) else ()
    for key, value in children:
        found += places(value, (*path, key))
    return found


def damage_document(document: Any, changes: list[tuple[float, Any]]) -> Any:
    """`document` with each change's place (as a fraction of all places) given the change's value:
    a valid recording with a wrong type, a missing field or a hostile string here and there."""
    for where, value in changes:
        spots = places(document)
        *parents, last = spots[int(where * len(spots))]
        parent = document
        for key in parents:
            parent = parent[key]
        parent[last] = value
    return document


CHANGES = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), JSON), max_size=2)
HAR_DOCUMENTS = st.builds(
    lambda entries, changes: damage_document({"log": {"version": "1.2", "entries": entries}}, changes),
    st.lists(har_entry(), min_size=1, max_size=6), CHANGES)
CASSETTES = st.builds(lambda interactions, changes: damage_document({"interactions": interactions, "version": 1},
                                                                    changes),
                      st.lists(cassette_interaction(), min_size=1, max_size=6), CHANGES)
"""Valid recordings, damaged in up to two places."""


# --- what every command must do with any input --------------------------------------------------

def run_cli(*args: str | Path):
    """The command's result; it must have succeeded or said why in one line, in valid UTF-8."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    result.stdout_bytes.decode("utf-8")
    result.stderr_bytes.decode("utf-8")
    found_secrets = args[0] == "scan" and result.exit_code == 1 and "possible secret(s)" in result.stdout
    if result.exit_code != 0 and not found_secrets:  # scan's exit 1 with its table says it found some
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert PLANTED not in result.output and "internal error" not in result.output, result.output
    event(f"{args[0]}: {'exit 1' if result.exit_code == 1 else 'done'}")  # see --hypothesis-show-statistics
    return result


def outputs_are_clean(folder: Path, source: Path) -> None:
    """Every file the commands left beside `source`: valid UTF-8 where it is text, no planted secret."""
    for path in folder.iterdir():
        if path == source:
            continue
        data = path.read_bytes()
        assert PLANTED.encode() not in data, f"the planted secret is in {path.name}"
        if path.suffix in (".html", ".har"):
            data.decode("utf-8")


def analyze_report_and_share(source: Path) -> None:
    """analyze, report, sanitize and scan `source`: each succeeds or says why in one line, and
    nothing they write holds the planted secret or text that is not UTF-8."""
    folder = source.parent
    db = folder / "analysis.sqlite"
    if run_cli("analyze", source, "--db", db).exit_code == 0:
        run_cli("report", "--db", db, "-o", folder / "report.html")
        run_cli("jobs", "--db", db, "--format", "json")
    else:
        assert not db.exists(), "a failed analysis left a database behind"
    run_cli("sanitize", source, "-o", folder / "copy.har")
    run_cli("scan", source)
    outputs_are_clean(folder, source)


def write(folder: Path, name: str, document: Any, syntax: str) -> Path:
    path = folder / name
    if syntax == "json":
        path.write_bytes(json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    else:
        path.write_bytes(yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass"))
    return path


@bounded(max_examples=40)
@given(document=HAR_DOCUMENTS)
def test_any_har_file_is_analysed_or_refused_in_one_line_and_leaks_nothing(document):
    with tempfile.TemporaryDirectory() as tmp:
        analyze_report_and_share(write(Path(tmp), "recording.har", document, "json"))


@bounded(max_examples=40)
@given(document=CASSETTES)
def test_any_cassette_is_analysed_or_refused_in_one_line_and_leaks_nothing(document):
    with tempfile.TemporaryDirectory() as tmp:
        analyze_report_and_share(write(Path(tmp), "cassette.yaml", document, "yaml"))


# --- flow files and databases with damaged bytes ---------------------------------------------------

DAMAGE = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8)
"""Bytes to overwrite: (where in the file, as a fraction of its size; the new byte)."""


def damaged(data: bytes, damage: list[tuple[float, int]], keep: int = 0) -> bytes:
    """`data` with the bytes `damage` names overwritten (the first `keep` bytes spared)."""
    out = bytearray(data)
    for where, value in damage:
        out[keep + int(where * (len(out) - keep))] = value
    return bytes(out)


@bounded(max_examples=25)
@given(damage=DAMAGE, cut=st.none() | st.floats(0.05, 1))
def test_a_damaged_flow_file_is_analysed_or_refused_in_one_line(damage, cut):
    data = damaged((RECORDINGS / "cached-status.flows").read_bytes(), damage)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "damaged.flows"
        source.write_bytes(data[: int(len(data) * cut)] if cut else data)
        analyze_report_and_share(source)


@pytest.fixture(scope="module")
def pristine_database(tmp_path_factory) -> bytes:
    """A real database (a recording with a finding, analysed), as bytes to damage copies of."""
    db = tmp_path_factory.mktemp("pristine") / "incident.sqlite"
    analyze_recordings([RECORDINGS / "cached-status.flows"], db)
    with sqlite3.connect(db) as conn:
        conn.execute("pragma journal_mode = delete")  # every page in the one file
    return db.read_bytes()


READ_COMMANDS = [["jobs"], ["warnings", "--format", "json"], ["sessions"], ["show", "e-1001"],
                 ["report", "-o", "{tmp}/report.html"], ["export", "--otlp", "{tmp}/traces.jsonl"],
                 ["diff", "e-1001", "e-1001"]]


@bounded(max_examples=60)
@given(damage=DAMAGE, command=st.sampled_from(READ_COMMANDS))
def test_a_damaged_database_is_read_or_refused_in_one_line_naming_it(pristine_database, damage, command):
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "damaged.sqlite"
        db.write_bytes(damaged(pristine_database, damage, keep=100))  # past the header: the pages
        result = run_cli(*[part.format(tmp=tmp) for part in command], "--db", db)
        if result.exit_code != 0:
            assert str(db) in result.output, result.output


# --- live flows through the addon ------------------------------------------------------------------

@pytest.fixture(scope="module")
def addon():
    """One PollWatch under mitmproxy's test context for every example (as one proxy sees all
    traffic), keeping nothing on disk."""
    watcher = PollWatch()
    with taddons.context(watcher) as tctx:
        tctx.configure(watcher, pollwatch_db="")
        yield watcher


FLOW_BODIES = st.one_of(BODY.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200),
                        st.just(b"\x1f\x8b\x08garbage"), st.just(b"(\xb5/\xfd" + b"\x00" * 20))


@bounded(max_examples=300, deadline_s=2.0)
@given(method=st.sampled_from(["GET", "POST", "HEAD", "PATCH"]), host=HOSTS, path=PATHS,
       request_headers=HEADERS, status=STATUSES.filter(bool), response_headers=HEADERS, body=FLOW_BODIES,
       when=st.floats(1e9, 4e9), failed=st.booleans())
def test_the_addon_passes_any_flow_on_unchanged(addon, method, host, path, request_headers, status,
                                                 response_headers, body, when, failed):
    def encoded(pairs):
        return [(n.encode(), v.encode("utf-8", "surrogatepass")) for n, v in pairs]

    request = http.Request.make(method, f"https://{host}{path}", b"", http.Headers(encoded(request_headers)))
    if failed:
        flow = tflow.tflow(req=request, err=True)
    else:
        flow = tflow.tflow(req=request, resp=http.Response.make(status, b"", http.Headers(encoded(response_headers))))
        flow.response.raw_content = body  # as it came: maybe not what its Content-Encoding says
        flow.response.timestamp_start = flow.response.timestamp_end = when + 0.1
    flow.request.timestamp_start = when
    sent = (flow.request.get_state(), flow.response.get_state() if flow.response else None)
    errors = addon.internal_errors
    (addon.error if failed else addon.response)(flow)
    assert (flow.request.get_state(), flow.response.get_state() if flow.response else None) == sent
    assert addon.internal_errors == errors
