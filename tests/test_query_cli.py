"""`pollwatch jobs | warnings | show | sessions | datasette` over a database built the way the
product builds it: recorded demo scenarios through the offline analyser, one session each."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pollwatch.cli import options as cli_options
from pollwatch.cli import query as cli_query
from pollwatch.sources.analysis import analyze_recordings
from pollwatch.cli.options import Since
from pollwatch.cli.app import main
from pollwatch.store.query import iso
from helpers import RECORDINGS, build_database
from test_views import SCENARIOS

CLI = main  # the real group: it turns library errors into one line


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return build_database(tmp_path_factory.mktemp("query-cli") / "pollwatch.sqlite", SCENARIOS)


def invoke(*args, **kw):
    return CliRunner().invoke(CLI, [str(a) for a in args], env={"COLUMNS": "250"}, **kw)


def as_json(*args) -> list | dict:
    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sessions_by_label(db: Path) -> dict[str, str]:
    return {s["label"]: s["id"] for s in as_json("sessions", "--db", db)}


def labels_of(db: Path, jobs: list[dict]) -> list[str]:
    names = {sid: label for label, sid in sessions_by_label(db).items()}
    return sorted(names[j["session_id"]] + ":" + j["job_id"] for j in jobs)


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    [line] = result.output.strip().splitlines()
    return line


# --- jobs ------------------------------------------------------------------------------------------

def test_jobs_json_keeps_the_contract_fields(db):
    jobs = as_json("jobs", "--db", db)
    assert len(jobs) == 11
    for job in jobs:
        assert {"job_id", "status_url", "host", "created_at", "states", "terminal_state", "polls"} <= set(job)
        assert isinstance(job["created_at"], float) and isinstance(job["polls"], int)
    replica = next(j for j in jobs if j["session_id"] == sessions_by_label(db)["replica-lag"])
    assert replica["states"][:3] == ["queued", "running", "queued"] and replica["terminal_state"] == "succeeded"


def test_jobs_json_keeps_the_earlier_extra_fields(db):
    [job] = as_json("jobs", "--db", db, "--session", sessions_by_label(db)["cached-status"])
    assert {"last_state", "polls_after_terminal", "created_by", "findings", "session_id", "key"} <= set(job)
    assert job["findings"] == 1 and job["codes"] == ["status-cacheable"]


def test_jobs_table_shows_each_state_sequence_and_finding_codes(db):
    result = invoke("jobs", "--db", db)
    assert result.exit_code == 0, result.output
    assert "op-1001" in result.output and "queued → running → succeeded" in result.output
    assert "stale-status, status-cacheable, status-from-shared-cache" in result.output


def test_jobs_state_keeps_jobs_whose_last_state_it_is(db):
    jobs = as_json("jobs", "--db", db, "--state", "queued")
    assert labels_of(db, jobs) == ["gives-up:e-1001", "lost-id:e-1001", "wrong-env:e-1001"]


def test_jobs_terminal_keeps_only_jobs_that_ended(db):
    jobs = as_json("jobs", "--db", db, "--terminal")
    assert len(jobs) == 7 and all(j["terminal_state"] for j in jobs)


def test_jobs_non_terminal_keeps_only_jobs_that_did_not_end(db):
    jobs = as_json("jobs", "--db", db, "--non-terminal")
    assert labels_of(db, jobs) == ["gives-up:e-1001", "lost-id:e-1001", "lost-id:e-100x", "wrong-env:e-1001"]


def test_jobs_host_matches_a_substring_of_the_host(db):
    assert labels_of(db, as_json("jobs", "--db", db, "--host", ":18182")) == ["shared-cache:e-1001"]


def test_jobs_has_finding_leaves_out_clean_jobs(db):
    labels = labels_of(db, as_json("jobs", "--db", db, "--has-finding"))
    assert len(labels) == 9 and "healthy:e-1001" not in labels and "healthy-azure:op-1001" not in labels


def test_jobs_code_keeps_jobs_with_that_finding(db):
    jobs = as_json("jobs", "--db", db, "--code", "polling-abandoned")
    assert labels_of(db, jobs) == ["gives-up:e-1001", "lost-id:e-1001", "wrong-env:e-1001"]


def test_jobs_code_refuses_a_code_that_does_not_exist(db):
    result = invoke("jobs", "--db", db, "--code", "no-such-code")
    assert result.exit_code == 2 and "status-cacheable" in result.output


def test_jobs_since_an_iso_time_leaves_out_older_jobs(db):
    jobs = as_json("jobs", "--db", db)
    newest_two = sorted(j["created_at"] for j in jobs)[-2:]
    assert [j["created_at"] for j in as_json("jobs", "--db", db, "--since", iso(newest_two[0]))] == newest_two


def test_jobs_since_a_duration_counts_back_from_now(db):
    # the recordings are older than a second and younger than ten years
    assert as_json("jobs", "--db", db, "--since", "1s") == []
    assert len(as_json("jobs", "--db", db, "--since", "3650d")) == 11


def test_since_rejects_what_is_neither_a_duration_nor_a_time(db):
    result = invoke("jobs", "--db", db, "--since", "yesterday")
    assert result.exit_code == 2 and "10m" in result.output


def test_since_reads_durations_in_every_unit():
    since = Since()
    before = since.convert("90s", None, None)
    assert since.convert("2h", None, None) == pytest.approx(before + 90 - 7200, abs=1)
    assert since.convert("1.5d", None, None) == pytest.approx(before + 90 - 129600, abs=1)
    assert since.convert("2026-11-28T16:40:00Z", None, None) == 1795884000.0


def test_jobs_session_narrows_to_that_session(db):
    assert labels_of(db, as_json("jobs", "--db", db, "--session", sessions_by_label(db)["lost-id"])) == [
        "lost-id:e-1001", "lost-id:e-100x"]


def test_jobs_filters_combine(db):
    jobs = as_json("jobs", "--db", db, "--non-terminal", "--has-finding", "--state", "queued", "--code", "wrong-environment")
    assert labels_of(db, jobs) == ["wrong-env:e-1001"]


def test_jobs_stuck_lists_idle_non_terminal_jobs_with_last_state_idle_time_and_why(db):
    result = invoke("jobs", "--db", db, "--stuck")
    assert result.exit_code == 0, result.output
    assert "4 stuck job(s)" in result.output and "no poll for 60s" in result.output
    for text in ("queued", "polling-abandoned", "unknown-job", "wrong-environment"):
        assert text in result.output


def test_jobs_stuck_json_gives_idle_seconds_and_codes_longest_idle_first(db):
    jobs = as_json("jobs", "--db", db, "--stuck")
    assert [j["idle_seconds"] for j in jobs] == sorted((j["idle_seconds"] for j in jobs), reverse=True)
    assert all(j["idle_seconds"] >= 60 and j["terminal_state"] is None for j in jobs)
    assert {code for j in jobs for code in j["codes"]} == {"polling-abandoned", "unknown-job", "wrong-environment"}


def test_stuck_after_sets_the_idle_threshold_and_implies_stuck(db):
    assert as_json("jobs", "--db", db, "--stuck-after", 10 ** 9) == []
    assert len(as_json("jobs", "--db", db, "--stuck-after", 0)) == 4


def test_jobs_limit_keeps_the_newest_jobs_oldest_first_and_says_how_many_more(db):
    every = as_json("jobs", "--db", db)
    result = invoke("jobs", "--db", db, "--limit", 3)
    assert result.exit_code == 0, result.output
    assert f"3 of {len(every)} job(s)" in result.output
    assert f"{len(every) - 3} more not shown (older jobs): --limit 0 shows all" in result.output
    assert as_json("jobs", "--db", db, "--limit", 3) == every[-3:]


def test_jobs_table_shows_a_hundred_rows_unless_told_and_json_lists_every_job(db):
    assert cli_options.DEFAULT_ROWS == 100
    assert len(as_json("jobs", "--db", db)) == 11  # JSON is for scripts: everything
    assert cli_options.rows_to_show(None, "table") == 100 and cli_options.rows_to_show(None, "json") is None
    assert cli_options.rows_to_show(0, "table") is None and cli_options.rows_to_show(5, "json") == 5


def test_jobs_limit_zero_lists_every_job_without_a_more_line(db):
    result = invoke("jobs", "--db", db, "--limit", 0)
    assert result.exit_code == 0 and "11 job(s)" in result.output and "more not shown" not in result.output


def test_jobs_stuck_limit_keeps_the_longest_idle(db):
    every = as_json("jobs", "--db", db, "--stuck")
    assert as_json("jobs", "--db", db, "--stuck", "--limit", 2) == every[:2]
    assert "2 more not shown (less idle ones)" in invoke("jobs", "--db", db, "--stuck", "--limit", 2).output


def test_jobs_limit_applies_after_the_filters(db):
    every = as_json("jobs", "--db", db, "--has-finding")
    assert as_json("jobs", "--db", db, "--has-finding", "--limit", 1) == every[-1:]
    assert f"1 of {len(every)} job(s)" in invoke("jobs", "--db", db, "--has-finding", "--limit", 1).output


@pytest.mark.parametrize("command", ["jobs", "warnings"])
def test_a_limit_beyond_what_sqlite_counts_is_refused_in_one_line(db, command):
    result = invoke(command, "--db", db, "--limit", 10 ** 20)
    assert result.exit_code == 2 and "--limit" in result.output and "Traceback" not in result.output


# --- warnings --------------------------------------------------------------------------------------

def test_warnings_json_keeps_the_contract_fields(db):
    findings = as_json("warnings", "--db", db)
    assert len(findings) == 14
    for finding in findings:
        assert {"code", "severity", "job_id", "ts", "message", "count", "evidence", "flow_id"} <= set(finding)
        assert isinstance(finding["ts"], float)


def test_warnings_table_shows_severity_code_and_message(db):
    result = invoke("warnings", "--db", db, "--code", "stale-status")
    assert result.exit_code == 0 and "error" in result.output and "a cache delivered queued" in result.output


def test_warnings_code_keeps_only_that_code(db):
    assert {f["code"] for f in as_json("warnings", "--db", db, "--code", "status-cacheable")} == {"status-cacheable"}


@pytest.mark.parametrize("minimum, expected", [
    ("info", {"info", "warning", "error"}), ("warning", {"warning", "error"}), ("error", {"error"})])
def test_warnings_severity_is_a_minimum(db, minimum, expected):
    assert {f["severity"] for f in as_json("warnings", "--db", db, "--severity", minimum)} == expected


def test_warnings_job_keeps_findings_of_jobs_whose_id_starts_with_the_prefix(db):
    assert [f["code"] for f in as_json("warnings", "--db", db, "--job", "e-100x")] == ["unknown-job"]
    assert len(as_json("warnings", "--db", db, "--job", "e-100")) == len(as_json("warnings", "--db", db))
    assert as_json("warnings", "--db", db, "--job", "op-") == []  # healthy-azure found nothing


def test_warnings_since_leaves_out_older_findings(db):
    newest = max(f["ts"] for f in as_json("warnings", "--db", db))
    assert [f["ts"] for f in as_json("warnings", "--db", db, "--since", iso(newest))] == [newest]


def test_warnings_session_narrows_to_that_session(db):
    findings = as_json("warnings", "--db", db, "--session", sessions_by_label(db)["etag-stuck"])
    assert sorted(f["code"] for f in findings) == ["etag-reused-across-states", "status-not-modified"]


def test_warnings_limit_keeps_the_newest_findings_and_says_how_many_more(db):
    every = as_json("warnings", "--db", db)
    assert as_json("warnings", "--db", db, "--limit", 4) == every[-4:]
    result = invoke("warnings", "--db", db, "--severity", "warning", "--limit", 1)
    serious = as_json("warnings", "--db", db, "--severity", "warning")
    assert f"1 of {len(serious)} finding(s)" in result.output
    assert f"{len(serious) - 1} more not shown (older findings)" in result.output


# --- show ------------------------------------------------------------------------------------------

def test_show_finds_a_job_by_a_unique_id_prefix(db):
    assert as_json("show", "op-", "--db", db)["job"]["job_id"] == "op-1001"


def test_show_refuses_an_ambiguous_prefix_in_one_line_naming_the_candidates(db):
    line = error_line(invoke("show", "e-100", "--db", db))
    assert "matches 10 jobs" in line and sessions_by_label(db)["healthy"] + "/1 (e-1001" in line
    assert "--session" in line


def test_show_resolves_a_repeated_job_id_within_a_session(db):
    session = sessions_by_label(db)["gives-up"]
    assert as_json("show", "e-1001", "--db", db, "--session", session)["job"]["session_id"] == session


def test_show_finds_a_job_by_its_key(db):
    key = sessions_by_label(db)["lost-id"] + "/2"
    assert as_json("show", key, "--db", db)["job"]["job_id"] == "e-100x"


def test_show_refuses_an_unknown_job_in_one_line(db):
    assert "no job matches 'zz-9'" in error_line(invoke("show", "zz-9", "--db", db))


def test_show_timeline_gives_offset_method_status_and_raw_to_canonical_state(db):
    result = invoke("show", "op-1001", "--db", db)
    assert result.exit_code == 0, result.output
    assert "+0.00s" in result.output and "POST" in result.output and "202" in result.output
    assert "NotStarted → queued" in result.output and "Succeeded → succeeded" in result.output


def test_show_timeline_gives_cache_verdict_served_by_and_the_findings_of_each_flow(db):
    result = invoke("show", "e-1001", "--db", db, "--session", sessions_by_label(db)["shared-cache"])
    assert "fresh / shared-cache" in result.output and "stale-status" in result.output


def test_show_lists_the_transitions_with_utc_times(db):
    result = invoke("show", "e-1001", "--db", db, "--session", sessions_by_label(db)["replica-lag"])
    assert "transitions" in result.output and result.output.count("Z │") >= 9


def test_show_support_block_gathers_what_an_incident_needs(db):
    result = invoke("show", "op-1001", "--db", db)
    block = result.output.split("support block", 1)[1]
    for text in ("job:            op-1001", "status URL:     http://127.0.0.1:18180/api/operations/op-1001",
                 "created by:     POST http://127.0.0.1:18180/api/translations", "ids seen:       x-request-id=",
                 "last state:     succeeded", "terminal state: succeeded  at 2026-", "(start) -> queued",
                 "running -> succeeded"):
        assert text in block, text


def test_show_support_lines_are_neither_wrapped_nor_boxed(db):
    result = CliRunner().invoke(CLI, ["show", "op-1001", "--db", str(db)], env={"COLUMNS": "60"})
    status_line = next(line for line in result.output.splitlines() if "status URL:" in line)
    assert status_line.strip() == "status URL:     http://127.0.0.1:18180/api/operations/op-1001?api-version=2024-05-01"


def test_show_json_is_one_object_with_polls_transitions_findings_and_support(db):
    detail = as_json("show", "e-1001", "--db", db, "--session", sessions_by_label(db)["shared-cache"])
    assert set(detail) == {"job", "polls", "transitions", "findings", "support"}
    assert len(detail["polls"]) == detail["job"]["polls"] + 1  # the creating exchange too
    assert [t["to_state"] for t in detail["transitions"]] == ["queued", "succeeded", "queued", "succeeded"]
    assert detail["support"]["terminal_at"].endswith("Z") and detail["support"]["ids_seen"]["x-request-id"]
    assert {f["code"] for f in detail["findings"]} == {"stale-status", "status-cacheable", "status-from-shared-cache"}


def test_show_says_when_a_job_was_first_seen_on_a_poll(db):
    result = invoke("show", "e-100x", "--db", db)
    assert "not captured (first seen on a poll)" in result.output and "unknown-job" in result.output


# --- sessions --------------------------------------------------------------------------------------

def test_sessions_lists_each_capture_with_its_jobs_and_findings(db):
    sessions = {s["label"]: s for s in as_json("sessions", "--db", db)}
    assert len(sessions) == 10
    assert (sessions["lost-id"]["jobs"], sessions["lost-id"]["findings"]) == (2, 2)
    assert sessions["healthy"]["source"] == "offline" and sessions["healthy"]["ended_at"] >= sessions["healthy"]["started_at"]


def test_sessions_table_shows_id_label_and_counts(db):
    result = invoke("sessions", "--db", db)
    assert "10 session(s)" in result.output and "shared-cache" in result.output


def test_sessions_session_narrows_to_one(db):
    session = sessions_by_label(db)["too-fast"]
    assert [s["id"] for s in as_json("sessions", "--db", db, "--session", session)] == [session]


# --- errors ----------------------------------------------------------------------------------------

COMMANDS = [["jobs"], ["warnings"], ["sessions"], ["show", "e-1"], ["datasette"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_missing_database_is_a_one_line_error(tmp_path, command):
    assert "no such database" in error_line(invoke(*command, "--db", tmp_path / "absent.sqlite"))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_file_that_is_not_sqlite_is_a_one_line_error(tmp_path, command):
    path = tmp_path / "notes.sqlite"
    path.write_text("just some text, certainly not a database\n" * 20)
    assert "not a usable SQLite database" in error_line(invoke(*command, "--db", path))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_another_applications_database_is_a_one_line_error(tmp_path, command):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("create table customers (id integer primary key, name text)")
    assert "not a pollwatch database" in error_line(invoke(*command, "--db", path))


# --- datasette -------------------------------------------------------------------------------------

def test_datasette_without_datasette_says_how_to_install_it(db, monkeypatch):
    monkeypatch.setattr(cli_query, "datasette_launcher", lambda: None)
    assert "pip install datasette" in error_line(invoke("datasette", "--db", db))


FAKE_DATASETTE = """
import json, sys
args = sys.argv[1:]
metadata = json.load(open(args[args.index("--metadata") + 1]))
json.dump({"args": args, "databases": list(metadata["databases"])}, open(sys.argv[0] + ".out", "w"))
"""


def test_datasette_serves_the_database_with_metadata_named_for_its_file(db, tmp_path, monkeypatch):
    fake = tmp_path / "datasette.py"
    fake.write_text(FAKE_DATASETTE)
    monkeypatch.setattr(cli_query, "datasette_launcher", lambda: [sys.executable, str(fake)])
    result = invoke("datasette", "--db", db, "--", "--port", "8123")
    assert result.exit_code == 0, result.output
    seen = json.loads((tmp_path / "datasette.py.out").read_text())
    assert seen["args"][:2] == ["serve", str(db)] and seen["args"][-2:] == ["--port", "8123"]
    assert seen["databases"] == [db.stem]


def test_jobs_table_adds_the_key_column_only_when_job_ids_repeat(db):
    assert "┃ key" in invoke("jobs", "--db", db).output
    assert "┃ key" not in invoke("jobs", "--db", db, "--session", sessions_by_label(db)["lost-id"]).output


def test_captured_text_is_shown_literally_not_read_as_markup(tmp_path):
    db = tmp_path / "markup.sqlite"
    analyze_recordings([RECORDINGS / "healthy.flows"], db, label="[bold]release 2[/bold]")
    assert "[bold]release 2[/bold]" in invoke("sessions", "--db", db).output
