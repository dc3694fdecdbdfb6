"""`pollwatch analyze`: recorded traffic (flow files, HAR, VCR cassettes) through the live engine."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mitmproxy import io
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.test import taddons

from pollwatch.core.job import INTERVALS, MAX_CLIENTS, MAX_ETAGS, MAX_STATES, RECENT_POLLS
from pollwatch.core.states import State
from pollwatch.core.tracking import Tracker
from pollwatch.sources import flowpipe
from pollwatch.sources.analysis import analyze_recordings
from pollwatch.sources.mitmflows import iter_flows
from pollwatch.cli.app import main
from pollwatch.demo import SCENARIOS
from pollwatch.demo.runner import run_demo
from pollwatch.sources.readers import ReadError
from helpers import Traffic

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"


def summary_of(db: Path, session: str | None = None) -> tuple[set[str], list[tuple[str, list[str]]]]:
    where, args = (" where session_id = ?", [session]) if session else ("", [])
    with sqlite3.connect(db) as conn:
        codes = {r[0] for r in conn.execute(f"select code from findings{where}", args)}
        jobs = [(j, json.loads(s)) for j, s in conn.execute(f"select job_id, states from jobs{where} order by created_at", args)]
    return codes, jobs


def sessions(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from sessions").fetchone()[0]


# --- formats -----------------------------------------------------------------------------------

def test_flow_file_gives_the_recorded_findings(tmp_path):
    summary = analyze_recordings([RECORDINGS / "cached-status.flows"], tmp_path / "a.sqlite")
    codes, jobs = summary_of(tmp_path / "a.sqlite")
    assert codes == {"status-cacheable"} and jobs[0][1] == ["queued", "running", "succeeded"]
    assert summary.formats == {"flows": 1} and summary.jobs == 1


def test_har_exported_by_mitmproxy_gives_the_same_result_as_the_flow_file(tmp_path):
    with open(RECORDINGS / "etag-stuck.flows", "rb") as f:
        flows = list(io.FlowReader(f).stream())
    with taddons.context():
        har = SaveHar().make_har(flows)
    (tmp_path / "etag.har").write_text(json.dumps(har))
    analyze_recordings([tmp_path / "etag.har"], tmp_path / "har.sqlite")
    analyze_recordings([RECORDINGS / "etag-stuck.flows"], tmp_path / "flows.sqlite")
    assert summary_of(tmp_path / "har.sqlite") == summary_of(tmp_path / "flows.sqlite")


def har_entry(url: str, status: int, body: dict | None, *, headers=(), started="2026-11-28T10:00:00.000Z",
              method="GET", from_cache: str | None = None) -> dict:
    entry = {
        "startedDateTime": started, "time": 20,
        "request": {"method": method, "url": url, "httpVersion": "HTTP/1.1", "headers": [], "queryString": [],
                    "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": status, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [],
                     "headers": [{"name": n, "value": v} for n, v in headers],
                     "content": {"size": 0, "mimeType": "application/json", "text": json.dumps(body) if body else ""},
                     "redirectURL": "", "headersSize": -1, "bodySize": -1},
        "cache": {}, "timings": {"send": 0, "wait": 20, "receive": 0},
    }
    if from_cache:
        entry["_fromCache"] = from_cache
    return entry


def test_har_from_browser_cache_is_flagged(tmp_path):
    api = "https://app.test/api/exports"
    har = {"log": {"version": "1.2", "creator": {"name": "devtools", "version": "1"}, "entries": [
        har_entry(api, 202, {"id": "e-1", "status": "queued"}, method="POST", headers=[("location", "/api/exports/e-1")]),
        har_entry(api + "/e-1", 200, {"status": "running"}, headers=[("cache-control", "max-age=60")],
                  started="2026-11-28T10:00:01.000Z"),
        har_entry(api + "/e-1", 200, {"status": "running"}, headers=[("cache-control", "max-age=60")],
                  started="2026-11-28T10:00:02.000Z", from_cache="memory"),
    ]}}
    (tmp_path / "devtools.har").write_text(json.dumps(har))
    analyze_recordings([tmp_path / "devtools.har"], tmp_path / "h.sqlite")
    codes, _ = summary_of(tmp_path / "h.sqlite")
    assert {"status-cacheable", "status-from-browser-cache"} <= codes


def cassette(interactions: list[tuple[str, str, int, dict, dict | None]]) -> dict:
    return {"version": 1, "interactions": [
        {"request": {"method": m, "uri": u, "body": None, "headers": {"Accept": ["*/*"]}},
         "response": {"status": {"code": c, "message": ""}, "headers": {k: [v] for k, v in h.items()},
                      "body": {"string": json.dumps(b) if b is not None else ""}}}
        for m, u, c, h, b in interactions]}


def test_vcr_cassette_uses_date_headers_and_keeps_order_within_a_second(tmp_path):
    op = "https://api.test/operations/op-1"
    date = "Mon, 01 Mar 2021 19:49:33 GMT"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cassette([
        ("POST", "https://api.test/jobs", 202, {"Operation-Location": op, "date": date}, None),
        ("GET", op, 200, {"date": date}, {"status": "notStarted"}),
        ("GET", op, 200, {"date": date}, {"status": "running"}),
        ("GET", op, 200, {"date": "Mon, 01 Mar 2021 19:49:35 GMT"}, {"status": "succeeded"}),
    ])))
    summary = analyze_recordings([path], tmp_path / "c.sqlite")
    codes, jobs = summary_of(tmp_path / "c.sqlite")
    assert jobs == [("op-1", ["queued", "running", "succeeded"])] and codes == set()
    assert summary.synthetic_times == []


def test_cassette_without_dates_gets_synthetic_spacing_and_says_so(tmp_path):
    op = "https://api.test/operations/op-2"
    path = tmp_path / "nodate.yaml"
    path.write_text(yaml.safe_dump(cassette([
        ("POST", "https://api.test/jobs", 202, {"Operation-Location": op}, None),
        ("GET", op, 200, {}, {"status": "running"}),
    ])))
    summary = analyze_recordings([path], tmp_path / "n.sqlite")
    assert summary.synthetic_times == [str(path)]
    with sqlite3.connect(tmp_path / "n.sqlite") as conn:
        [(evidence,)] = conn.execute("select evidence from findings where code = 'polling-abandoned'").fetchall()
    assert "timing is approximate" in json.loads(evidence)["note"]


def test_folders_are_walked_and_other_files_skipped(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("healthy", "cached-status"):
        (tmp_path / "in" / f"{name}.flows").write_bytes((RECORDINGS / f"{name}.flows").read_bytes())
    (tmp_path / "in" / "README.md").write_text("notes")
    summary = analyze_recordings([tmp_path / "in"], tmp_path / "f.sqlite")
    assert len(summary.files) == 2 and summary.jobs == 2


def test_the_summary_counts_every_job_even_beyond_those_kept_in_memory(tmp_path):
    from pollwatch.core.config import Config

    files = [RECORDINGS / f"{name}.flows" for name in ("healthy", "cached-status", "failed")]
    summary = analyze_recordings(files, tmp_path / "m.sqlite", config=Config(max_jobs=1))
    with sqlite3.connect(tmp_path / "m.sqlite") as conn:
        stored = conn.execute("select count(*) from jobs").fetchone()[0]
    assert summary.jobs == stored == 3


def test_analysis_is_deterministic(tmp_path):
    for name in ("one", "two"):
        analyze_recordings([RECORDINGS / "replica-lag.flows", RECORDINGS / "slow-then-fast.flows"], tmp_path / f"{name}.sqlite")
    assert summary_of(tmp_path / "one.sqlite") == summary_of(tmp_path / "two.sqlite")



def _rows(db: Path) -> dict[str, list[tuple]]:
    """Every stored row of the one session, its id taken out, in write order."""
    with sqlite3.connect(db) as conn:
        sid = conn.execute("select id from sessions").fetchone()[0]
        return {table: [tuple(v.replace(sid, "S") if isinstance(v, str) else v for v in row)
                        for row in conn.execute(f"select * from {table} order by rowid")]
                for table in ("jobs", "polls", "transitions", "findings")}


def test_several_files_are_streamed_one_after_another_in_the_order_given(tmp_path):
    """Files are taken in turn, each in recorded order (not merged by time): the rows of a
    three-file run are the same on every run, and its polls are each file's polls, file after file."""
    names = ["replica-lag", "healthy", "slow-then-fast"]
    files = [RECORDINGS / f"{n}.flows" for n in names]
    for run in ("one", "two"):
        analyze_recordings(files, tmp_path / f"{run}.sqlite")
    assert _rows(tmp_path / "one.sqlite") == _rows(tmp_path / "two.sqlite")
    apart = []
    for name in names:
        analyze_recordings([RECORDINGS / f"{name}.flows"], tmp_path / f"{name}.sqlite")
        apart += [row[3] for row in _rows(tmp_path / f"{name}.sqlite")["polls"]]  # flow_id
    assert [row[3] for row in _rows(tmp_path / "one.sqlite")["polls"]] == apart

# --- bad input ---------------------------------------------------------------------------------

def test_truncated_flow_file_is_a_one_line_error_naming_file_and_offset(tmp_path):
    data = (RECORDINGS / "healthy.flows").read_bytes()
    broken = tmp_path / "broken.flows"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=r"broken\.flows: .* at byte \d+"):
        analyze_recordings([broken], tmp_path / "x.sqlite")


@pytest.mark.parametrize("name, content, message", [
    ("bad.har", b'{"log": {"entries": [{"request": {}}]}}', "HAR entry 0 is malformed"),
    ("bad.json", b"{not json", "not a HAR file"),
    ("bad.yaml", b"interactions:\n  - request: [unclosed", "not a valid YAML cassette at line"),
    ("other.yaml", b"interactions: 3\n", "interaction"),
    ("random.bin", bytes(range(256)) * 4, "flow file"),
])
def test_corrupt_inputs_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReadError, match=message):
        analyze_recordings([path], tmp_path / "x.sqlite")


def test_a_bad_file_leaves_the_database_as_it_was(tmp_path):
    db = tmp_path / "keep.sqlite"
    analyze_recordings([RECORDINGS / "healthy.flows"], db)
    (tmp_path / "junk.har").write_text("{junk")
    result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / "cached-status.flows"), str(tmp_path / "junk.har"),
                                       "--db", str(db)])
    assert result.exit_code == 1 and "junk.har" in result.output and len(result.output.strip().splitlines()) == 1
    assert sessions(db) == 1



def test_a_flow_file_corrupt_midway_leaves_an_existing_database_as_it_was(tmp_path):
    """The flow file is streamed, so rows of this run were written before the damage was found:
    they are taken out again."""
    db = tmp_path / "keep.sqlite"
    analyze_recordings([RECORDINGS / "healthy.flows"], db)
    before = _rows(db)
    data = (RECORDINGS / "replica-lag.flows").read_bytes()
    (tmp_path / "broken.flows").write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(ReadError, match=r"broken\.flows: .* at byte \d+"):
        analyze_recordings([RECORDINGS / "cached-status.flows", tmp_path / "broken.flows"], db)
    assert sessions(db) == 1 and _rows(db) == before

def test_missing_path_is_an_error(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "nope.flows"), "--db", str(tmp_path / "x.sqlite")])
    assert result.exit_code == 1 and "no such file or folder" in result.output


# --- command line ------------------------------------------------------------------------------

def test_analyze_prints_a_one_line_summary(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / "expired.flows"), "--db", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 0
    assert "1 job(s); findings: 0 error, 1 warning, 0 info" in result.output


def test_analyze_json_summary(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / "expired.flows"), "--db", str(tmp_path / "s.sqlite"),
                                       "--format", "json"])
    summary = json.loads(result.output)
    assert summary["jobs"] == 1 and summary["findings"] == {"warning": 1}


# --- live and offline agree --------------------------------------------------------------------

def test_a_live_demo_recording_analysed_offline_gives_the_same_jobs_states_and_findings(tmp_path):
    names = ["healthy", "cached-status", "replica-lag", "slow-then-fast", "wrong-env", "gives-up"]
    run = run_demo([SCENARIOS[n] for n in names], db=tmp_path / "live.sqlite", record=tmp_path / "live.flows")
    analyze_recordings([run.record], tmp_path / "offline.sqlite")
    live_codes, live_jobs = summary_of(tmp_path / "live.sqlite")
    offline_codes, offline_jobs = summary_of(tmp_path / "offline.sqlite")
    assert offline_jobs == live_jobs
    assert offline_codes == live_codes


def test_a_har_with_unusable_urls_is_analysed_without_a_crash(tmp_path):
    har = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [
        har_entry("https://app.test/api/jobs", 202, {"id": "j-1"}, method="POST",
                  headers=[("location", "http://app.test:99999/jobs/j-1")]),
        har_entry("http://h:70000/x", 200, {"status": "running"}, started="2026-11-28T10:00:01.000Z"),
    ]}}
    (tmp_path / "odd.har").write_text(json.dumps(har))
    summary = analyze_recordings([tmp_path / "odd.har"], tmp_path / "odd.sqlite")
    assert summary.exchanges == 2


# --- bounded memory, a second reader process ---------------------------------------------------

def test_a_job_polled_all_day_keeps_a_bounded_history():
    """Thousands of polls from hundreds of clients, flipping between two states and ETags: what
    the job remembers stays within its bounds, and the latest of everything is kept."""
    traffic = Traffic(Tracker())
    traffic.create()
    for n in range(3000):
        state = ("running", "queued")[n % 2] if n < 2999 else "succeeded"
        traffic.poll(state, client=f"10.0.{n // 256}.{n % 256}", headers={"Retry-After": "1", "ETag": f'"v{n}"'})
    job = next(iter(traffic.tracker.jobs.values()))
    assert job.polls == 3000 and job.states[-1] is State.SUCCEEDED and job.last_state is State.SUCCEEDED
    assert len(job.states) == MAX_STATES and job.states[:3] == [State.QUEUED, State.RUNNING, State.QUEUED]
    assert len(job.recent) == 3 * RECENT_POLLS and len(job.intervals) == INTERVALS
    assert len(job.etags) <= MAX_ETAGS and len(job.retry_after_for) == MAX_CLIENTS
    assert list(job.retry_after_for)[-1] == "10.0.11.183"  # the latest clients' advice is the one kept
    assert len(job.terminal_seen_by) == 1


def test_a_poll_answered_before_an_older_one_is_still_caught_from_the_compact_history():
    traffic = Traffic(Tracker())
    traffic.create()
    traffic.poll("running", at=traffic.now + 1.0, took=0.1)
    traffic.poll("succeeded", at=traffic.now + 3.0, took=0.1)
    update = traffic.poll("running", at=traffic.now + 2.0, took=5.0)  # sent before, answered after
    assert "response-reordered" in {f.code for f in update.findings}


def test_a_large_flow_file_read_by_a_second_process_gives_the_same_rows(tmp_path, monkeypatch):
    files = [RECORDINGS / "replica-lag.flows", RECORDINGS / "healthy.flows"]
    analyze_recordings(files, tmp_path / "here.sqlite")
    monkeypatch.setattr(flowpipe, "PARALLEL_FROM", 0)  # every file counts as large
    analyze_recordings(files, tmp_path / "beside.sqlite")
    assert _rows(tmp_path / "beside.sqlite") == _rows(tmp_path / "here.sqlite")


def test_the_reader_process_hands_out_the_same_observations_and_offsets():
    path = RECORDINGS / "etag-stuck.flows"
    assert list(flowpipe.iter_flows_beside(path)) == list(iter_flows(path))


def test_a_flow_file_damaged_midway_fails_the_same_way_through_the_reader_process(tmp_path, monkeypatch):
    data = (RECORDINGS / "replica-lag.flows").read_bytes()
    broken = tmp_path / "broken.flows"
    broken.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(ReadError) as here:
        analyze_recordings([broken], tmp_path / "here.sqlite")
    monkeypatch.setattr(flowpipe, "PARALLEL_FROM", 0)
    with pytest.raises(ReadError) as beside:
        analyze_recordings([broken], tmp_path / "beside.sqlite")
    assert str(beside.value) == str(here.value) and not (tmp_path / "beside.sqlite").exists()
