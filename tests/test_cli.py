"""The `pollwatch` command line over a real database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import Traffic
from pollwatch.cli.app import main
from pollwatch.store.database import Store
from pollwatch.core.tracking import Tracker


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "pw.sqlite"
    with Store(path) as store:
        traffic = Traffic(Tracker(key_prefix=store.session.id + "/"))
        for update in [traffic.create(), traffic.poll("running", cache="max-age=30"), traffic.poll("succeeded")]:
            store.submit(update)
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_jobs_json_contract(db):
    result = invoke("jobs", "--db", db, "--format", "json")
    assert result.exit_code == 0, result.output
    [job] = json.loads(result.output)
    assert {k: job[k] for k in ("job_id", "status_url", "host", "states", "terminal_state", "polls")} == {
        "job_id": "e-1", "status_url": "http://api.test:8080/api/exports/e-1", "host": "http://api.test:8080",
        "states": ["queued", "running", "succeeded"], "terminal_state": "succeeded", "polls": 2}
    assert isinstance(job["created_at"], float)


def test_warnings_json_contract(db):
    result = invoke("warnings", "--db", db, "--format", "json")
    [finding] = json.loads(result.output)
    assert finding["code"] == "status-cacheable" and finding["severity"] == "warning" and finding["job_id"] == "e-1"
    assert isinstance(finding["ts"], float) and finding["evidence"]["headers"]["cache-control"] == "max-age=30"


def test_json_listings_print_one_row_to_a_line_with_sorted_keys(db):
    result = invoke("jobs", "--db", db, "--format", "json")
    lines = result.output.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 3
    [job] = json.loads(result.output)
    assert lines[1].strip() == json.dumps(job, sort_keys=True, separators=(",", ":"))


def test_rows_the_fast_encoder_refuses_are_printed_in_the_same_shape(capsysbinary):
    """orjson refuses lone surrogates (a JSON document may hold the escape) and integers beyond
    64 bits; json writes those rows instead."""
    from pollwatch.cli.render import echo_json

    rows = [{"b": 1, "a": "x"}, {"text": "half a pair \ud800"}, {"n": 2**70}]
    echo_json([*rows, {"blob": b"\xffa"}])  # a BLOB where text belongs: a damaged database
    out = capsysbinary.readouterr().out.decode()
    assert json.loads(out) == [*rows, {"blob": "\ufffda"}]
    assert out.splitlines()[1:4] == ['  {"a":"x","b":1},', '  {"text":"half a pair \\ud800"},', f'  {{"n":{2**70}}},']


def test_json_reaches_a_text_only_stdout(monkeypatch):
    import io
    import sys

    from pollwatch.cli.render import echo_json

    text = io.StringIO()
    monkeypatch.setattr(sys, "stdout", text)
    echo_json([{"job_id": "e-1", "states": ["queued", "succeeded"]}])
    assert json.loads(text.getvalue()) == [{"job_id": "e-1", "states": ["queued", "succeeded"]}]


def test_a_reader_that_leaves_early_gets_no_error_line(db):
    import subprocess
    import sys
    from pathlib import Path

    pollwatch = Path(sys.executable).with_name("pollwatch")
    process = subprocess.Popen([str(pollwatch), "jobs", "--db", str(db), "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has written anything: its write fails (EPIPE)
    assert process.stderr.read() == b""
    assert process.wait(timeout=60) in (0, 1)


def test_jobs_table_shows_the_state_sequence(db):
    result = invoke("jobs", "--db", db)
    assert result.exit_code == 0 and "e-1" in result.output and "succeeded" in result.output


def test_warnings_table_shows_code_and_severity(db):
    result = invoke("warnings", "--db", db)
    assert "status-cacheable" in result.output and "warning" in result.output


def test_session_filter_narrows_the_listing(db):
    result = invoke("jobs", "--db", db, "--session", "no-such-session", "--format", "json")
    assert json.loads(result.output) == []


def test_missing_database_is_a_one_line_error(tmp_path):
    result = invoke("jobs", "--db", tmp_path / "absent.sqlite")
    assert result.exit_code == 1 and "no such database" in result.output
    assert len(result.output.strip().splitlines()) == 1


EVERY_COMMAND = ("analyze", "contract", "datasette", "demo", "diff", "export", "jobs", "prune", "regress", "replay", "report", "run", "sanitize",
                 "scan", "sessions", "show", "variants", "warnings", "worker-log")


def test_help_lists_every_command_in_its_commands_section():
    result = invoke("--help")
    listed = result.output.split("Commands:", 1)[1]
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert names == set(EVERY_COMMAND)


def test_every_command_has_help_that_names_what_it_does():
    for name in EVERY_COMMAND:
        result = invoke(name, "--help")
        assert result.exit_code == 0 and f"Usage: pollwatch {name}" in result.output, result.output


def test_run_starts_mitmdump_with_the_addon_and_records_jobs(api, tmp_path):
    import os
    import re
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    db = tmp_path / "run.sqlite"
    process = subprocess.Popen([str(Path(sys.executable).with_name("pollwatch")), "run", "--db", str(db),
                                "--port", "0", "--set", "termlog_verbosity=info"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        port = None
        for line in process.stdout:
            if m := re.search(r"listening at 127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "pollwatch run did not start a proxy"
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", trust_env=False) as client:
            location = client.post(f"{api.url}/api/exports").headers["Location"]
            client.get(api.url + location)
        time.sleep(1.0)
    finally:
        process.terminate()
        process.wait(timeout=20)
    result = invoke("jobs", "--db", db, "--format", "json")
    assert [j["job_id"] for j in json.loads(result.output)] == [location.rsplit("/", 1)[1]]


def test_hints_name_tools_as_this_user_can_run_them(tmp_path, monkeypatch):
    from pollwatch.cli.demo import command_name

    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool in ("pollwatch", "sqlite-utils"):
        (venv_bin / tool).write_text("#!/bin/sh\n")
        (venv_bin / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [".venv/bin/pollwatch", "demo"])
    assert command_name("pollwatch") == ".venv/bin/pollwatch"
    assert command_name("sqlite-utils") == ".venv/bin/sqlite-utils"
    monkeypatch.setenv("PATH", str(venv_bin))
    assert command_name("pollwatch") == "pollwatch"
