"""Read commands never create or change a database, and damaged ones give one line (issue 16)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from click.testing import CliRunner

from helpers import RECORDINGS
from pollwatch.cli.app import main
from pollwatch.sources.analysis import analyze_recordings

READ_COMMANDS = [["jobs"], ["warnings"], ["sessions"], ["show", "e-1001"]]


@pytest.fixture
def analysed(tmp_path):
    db = tmp_path / "incident.sqlite"
    analyze_recordings([RECORDINGS / "healthy.flows"], db)
    return db


def _digest(folder) -> dict[str, str]:
    """Every file's digest; SQLite's own WAL sidecars (a reader of a WAL database may leave an empty
    `-wal` and its `-shm` index) are not the database's content."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()
            if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_on_an_empty_file_refuses_it_in_one_line_and_leaves_it_empty(tmp_path, command):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    result = CliRunner().invoke(main, [*command, "--db", str(empty)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert str(empty) in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["empty.sqlite"] and empty.stat().st_size == 0


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_a_read_command_changes_no_byte_of_the_database_folder(analysed, command):
    before = _digest(analysed.parent)
    result = CliRunner().invoke(main, [*command, "--db", str(analysed)])
    assert result.exit_code == 0, result.output
    assert _digest(analysed.parent) == before


def test_a_database_older_than_its_views_is_read_without_being_upgraded(analysed):
    with sqlite3.connect(analysed) as conn:
        views = [r[0] for r in conn.execute("select name from sqlite_master where type = 'view'")]
        for view in views:
            conn.execute(f"drop view {view}")
    before = _digest(analysed.parent)
    result = CliRunner().invoke(main, ["jobs", "--db", str(analysed)])
    assert result.exit_code == 0 and "e-1001" in result.output
    assert _digest(analysed.parent) == before


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_text_that_is_not_utf8_in_a_damaged_database_gives_no_traceback(analysed, command):
    with sqlite3.connect(analysed) as conn:
        conn.execute("update polls set state = cast(x'fffe80' as text), url = cast(x'c328' as text)")
        conn.execute("update jobs set states = cast(x'ff' as text) where job_id != 'e-1001'")
    result = CliRunner().invoke(main, [*command, "--db", str(analysed)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output


def test_a_job_listing_with_text_that_is_not_utf8_shows_it_replaced(analysed):
    """The fast read (SQLite's own UTF-8 decoding) meets bytes it cannot decode: the rows are read
    again the careful way, with the bad bytes replaced, and nothing else changes."""
    with sqlite3.connect(analysed) as conn:
        conn.execute("update jobs set host = cast(x'6170692dff' as text) where job_id = 'e-1001'")
    result = CliRunner().invoke(main, ["jobs", "--db", str(analysed), "--format", "json"])
    assert result.exit_code == 0, result.output
    [job] = [j for j in json.loads(result.stdout) if j["job_id"] == "e-1001"]
    assert job["host"] == "api-\ufffd" and job["states"][-1] == "succeeded"


def _jobs_listed_three_times(db, states: str | None = None) -> list[dict]:
    """`list_jobs` after two more sessions were given copies of the database's jobs (with
    `states`, every job's states cell set to it first)."""
    from pollwatch.store.query import list_jobs
    from pollwatch.store.reading import open_database

    with sqlite3.connect(db) as conn:
        if states is not None:
            conn.execute("update jobs set states = ?", [states])
        columns = ", ".join(r[1] for r in conn.execute("pragma table_info(jobs)"))
        for suffix in ("-a", "-b"):
            conn.execute(f"insert into sessions select id || '{suffix}', started_at, ended_at, source, label, "
                         "version, settings from sessions where id not like '%-_'")
            copied = columns.replace("key", f"key || '{suffix}'", 1).replace("session_id", f"session_id || '{suffix}'", 1)
            conn.execute(f"insert into jobs ({columns}) select {copied} from jobs where key not like '%-_'")
    with open_database(db) as conn:
        return list_jobs(conn)


def test_jobs_that_went_through_the_same_states_each_get_their_own_list(analysed):
    jobs = _jobs_listed_three_times(analysed)
    same = [job for job in jobs if job["states"] == jobs[-1]["states"]]
    assert len(same) >= 3
    for job in same[:-1]:
        job["states"].append("changed")
    assert "changed" not in same[-1]["states"]


def test_a_damaged_states_cell_holding_nested_lists_is_not_shared_between_jobs(analysed):
    jobs = _jobs_listed_three_times(analysed, '[["queued", "running"], "succeeded"]')
    assert len(jobs) >= 3
    for job in jobs[:-1]:
        job["states"][0].append("changed")
    assert jobs[-1]["states"] == [["queued", "running"], "succeeded"]
