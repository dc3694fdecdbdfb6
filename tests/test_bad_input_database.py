"""A damaged or foreign database is one line naming the file, and nothing a command reads is
changed (issue 16): corrupt pages met long after the database opened, a schema that is not
pollwatch's, an empty file given to `prune`, and `scan` of a database. Whatever else escapes a
command is one line saying it is a bug."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from helpers import RECORDINGS
from pollwatch.cli.app import TRACEBACK_VARIABLE, PollwatchGroup, main
from pollwatch.sources.analysis import analyze_recordings
from test_read_only_commands import _digest

READERS = [["jobs"], ["warnings"], ["sessions"], ["show", "e-1001"], ["report", "-o", "{tmp}/report.html"],
           ["export", "--otlp", "{tmp}/traces.jsonl"], ["diff", "e-1001", "e-1001"]]


@pytest.fixture
def database(tmp_path) -> Path:
    """A recording with a finding analysed, the database out of WAL mode so its pages are all in the file."""
    db = tmp_path / "incident.sqlite"
    analyze_recordings([RECORDINGS / "cached-status.flows"], db)
    with sqlite3.connect(db) as conn:
        conn.execute("pragma journal_mode = delete")
    return db


def damage(db: Path, table: str, part: str) -> None:
    """Overwrite the B-tree page header (`header`) or the cells (`cells`) of `table`'s root page,
    as a failing disk would; the same bytes every run."""
    with sqlite3.connect(db) as conn:
        [page] = conn.execute("select rootpage from sqlite_master where name = ?", (table,)).fetchone()
        [size] = conn.execute("pragma page_size").fetchone()
    data, noise = bytearray(db.read_bytes()), random.Random(16)
    start = (page - 1) * size
    span = range(start + 1, start + 12) if part == "header" else range(start + size // 2, start + size - 96, 7)
    for offset in span:
        data[offset] = noise.randrange(256)
    db.write_bytes(bytes(data))


def invoke(command: list[str], db: Path):
    args = [part.format(tmp=db.parent) for part in command]
    return CliRunner().invoke(main, [*args, "--db", str(db)])


def one_line_or_success(result, db: Path) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if result.exit_code != 0:
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and str(db) in lines[0], result.output


@pytest.mark.parametrize("part", ["header", "cells"])
@pytest.mark.parametrize("table", ["jobs", "polls", "findings"])
@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_read_command_on_corrupt_pages_gives_one_line_naming_the_database(database, command, table, part):
    damage(database, table, part)
    one_line_or_success(invoke(command, database), database)


@pytest.mark.parametrize("command", READERS, ids=lambda c: c[0])
def test_a_read_command_on_a_database_missing_a_column_gives_one_line_naming_it(database, command):
    with sqlite3.connect(database) as conn:
        for (view,) in conn.execute("select name from sqlite_master where type = 'view'").fetchall():
            conn.execute(f"drop view {view}")
        conn.execute("alter table jobs drop column host")
    one_line_or_success(invoke(command, database), database)


def test_prune_on_a_damaged_database_gives_one_line_naming_it(database):
    damage(database, "meta", "header")
    result = invoke(["prune", "--older-than", "1d"], database)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert str(database) in result.output and "malformed" in result.output


def test_prune_leaves_an_empty_file_empty(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    result = invoke(["prune", "--older-than", "1d"], empty)
    assert result.exit_code == 1 and "empty file" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["empty.sqlite"] and empty.stat().st_size == 0


def test_scan_of_a_database_changes_no_byte_of_it(database):
    with sqlite3.connect(database) as conn:  # an older database: its views are made for reading only
        for (view,) in conn.execute("select name from sqlite_master where type = 'view'").fetchall():
            conn.execute(f"drop view {view}")
    before = _digest(database.parent)
    result = CliRunner().invoke(main, ["scan", str(database)])
    assert result.exit_code in (0, 1) and "possible secret(s)" in result.output
    assert _digest(database.parent) == before


def test_scan_of_a_damaged_database_gives_one_line_naming_it(database):
    damage(database, "jobs", "header")
    result = CliRunner().invoke(main, ["scan", str(database)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert str(database) in result.output


@click.group(cls=PollwatchGroup)
def boundary() -> None:
    """A group with pollwatch's error boundary and a command with a bug in it."""


@boundary.command("divide")
def divide() -> None:
    print(1 / 0)


def test_an_unexpected_error_is_one_line_saying_it_is_a_bug(monkeypatch):
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    result = CliRunner().invoke(boundary, ["divide"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "internal error in divide: ZeroDivisionError: division by zero" in result.output
    assert "file a bug" in result.output


def test_the_traceback_of_an_unexpected_error_is_there_when_asked_for(monkeypatch):
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    result = CliRunner().invoke(boundary, ["divide"])
    assert isinstance(result.exception, ZeroDivisionError)
