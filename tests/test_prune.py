"""`pollwatch prune`: old sessions go with all their rows, newer ones stay, the file shrinks."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main

from pollwatch.sources.analysis import analyze_recordings
from pollwatch.store.prune import PruneError, parse_age

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
DAY = 86400
CHILDREN = ("jobs", "polls", "transitions", "findings")


def rows(db: Path, session: str | None = None) -> dict[str, int]:
    where, args = (" where session_id = ?", [session]) if session else ("", [])
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"select count(*) from {t}{where}", args).fetchone()[0] for t in CHILDREN}


@pytest.fixture
def db(tmp_path) -> tuple[Path, list[str]]:
    """Three sessions of every recording: two 40 days old, one current."""
    path = tmp_path / "pollwatch.sqlite"
    ids = [analyze_recordings([RECORDINGS], path, label=f"run {n}").session_id for n in range(3)]
    with sqlite3.connect(path) as conn:
        for session in ids[:2]:
            conn.execute("update sessions set started_at = ?, ended_at = ? where id = ?",
                         (time.time() - 40 * DAY, time.time() - 40 * DAY + 60, session))
    return path, ids


def size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def test_old_sessions_go_with_their_rows_and_the_file_shrinks(db):
    path, (old1, old2, current) = db
    kept = rows(path, current)
    before = size(path)
    result = CliRunner().invoke(main, ["prune", "--db", str(path), "--older-than", "30d"])
    assert result.exit_code == 0, result.output
    assert f"removed 2 session(s) (2 sessions, {2 * kept['jobs']} jobs" in result.output
    assert old1 in result.output and old2 in result.output and current not in result.output
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("select id from sessions")] == [current]
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert rows(path) == kept and all(kept.values())
    assert size(path) < before * 0.6


def test_dry_run_and_single_session(db):
    path, (old1, _, current) = db
    everything = rows(path)
    result = CliRunner().invoke(main, ["prune", "--db", str(path), "--older-than", "30d", "--dry-run"])
    assert result.exit_code == 0 and "would remove 2 session(s)" in result.output
    assert rows(path) == everything
    result = CliRunner().invoke(main, ["prune", "--db", str(path), "--session", current])
    assert result.exit_code == 0 and "removed 1 session(s)" in result.output
    assert rows(path, current) == dict.fromkeys(CHILDREN, 0) and rows(path, old1)["jobs"] > 0
    result = CliRunner().invoke(main, ["prune", "--db", str(path), "--session", "nope"])
    assert result.exit_code == 1 and "no session 'nope'" in result.output


@pytest.mark.parametrize(("setup", "message"), [
    ("create table things (name text)", "not a pollwatch database"),
    ("create table meta (key text primary key, value text); insert into meta values ('schema_version', '99')",
     "written by a newer pollwatch"),
])
def test_foreign_and_newer_databases_are_refused(tmp_path, setup, message):
    path = tmp_path / "x.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(setup)
    result = CliRunner().invoke(main, ["prune", "--db", str(path), "--older-than", "1d"])
    assert result.exit_code == 1 and message in result.output
    assert result.output.strip().count("\n") == 0


def test_bad_arguments_are_one_line(tmp_path):
    missing = CliRunner().invoke(main, ["prune", "--db", str(tmp_path / "none.sqlite"), "--older-than", "1d"])
    assert missing.exit_code == 1 and "no such database" in missing.output
    assert not (tmp_path / "none.sqlite").exists()
    assert parse_age("30d") == 30 * DAY and parse_age("12h") == 12 * 3600 and parse_age("2w") == 14 * DAY
    with pytest.raises(PruneError, match="cannot read age"):
        parse_age("a month")
