"""Regular files only, outputs whole or not at all (issue 16): a named pipe or a device given where
a file belongs is refused in one line before it is opened (it would block or never end), an output
never replaces one, and a full disk leaves the previous output as it was. Each command runs as a
real process, so a hang is a failed test, not a stuck suite."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import RECORDINGS
from pollwatch.sources.analysis import analyze_recordings
from test_loud_failure import _with_file_size_limit

CLI = [sys.executable, "-c", "from pollwatch.cli.app import main; main()"]
HEALTHY = RECORDINGS / "healthy.flows"
PATIENCE_S = 30
"""Far longer than any command here needs; a command waiting on a pipe never ends by itself."""


def run_cli(*args: str | Path, timeout: float = PATIENCE_S, **options) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **options)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command printed (asserting it is one line, exit 1, no traceback)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return lines[0]


@pytest.fixture
def pipe(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def database(tmp_path) -> Path:
    db = tmp_path / "incident.sqlite"
    analyze_recordings([HEALTHY], db)
    return db


INPUTS = {
    "analyze": ["analyze", "{pipe}", "--db", "{tmp}/new.sqlite"],
    "scan": ["scan", "{pipe}"],
    "sanitize": ["sanitize", "{pipe}", "-o", "{tmp}/copy.flows"],
    "contract infer": ["contract", "infer", "{pipe}"],
    "variants": ["variants", "{pipe}", "-o", "{tmp}/variants"],
    "analyze --contract": ["analyze", str(HEALTHY), "--db", "{tmp}/new.sqlite", "--contract", "{pipe}"],
    "scan --rules": ["scan", str(HEALTHY), "--rules", "{pipe}"],
    "jobs --db": ["jobs", "--db", "{pipe}"],
    "analyze --db": ["analyze", str(HEALTHY), "--db", "{pipe}"],
}


def _filled(template: list[str], **values: Path) -> list[str]:
    return [part.format(**values) for part in template]


@pytest.mark.parametrize("command", INPUTS)
def test_a_named_pipe_given_as_input_is_refused_in_one_line_without_waiting_for_a_writer(tmp_path, pipe, command):
    line = error_line(run_cli(*_filled(INPUTS[command], pipe=pipe, tmp=tmp_path)))
    assert str(pipe) in line and "named pipe" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"] and pipe.is_fifo()


@pytest.mark.parametrize("command", ["analyze", "scan"])
def test_a_device_given_as_a_recording_is_refused_before_it_is_read(tmp_path, command):
    """/dev/zero never ends: reading it whole would fill the memory."""
    line = error_line(run_cli(*_filled(INPUTS[command], pipe=Path("/dev/zero"), tmp=tmp_path)))
    assert "/dev/zero" in line and "character device" in line
    assert list(tmp_path.iterdir()) == []


OUTPUTS = {
    "sanitize -o": ["sanitize", str(HEALTHY), "-o", "{target}"],
    "report -o": ["report", "--db", "{db}", "-o", "{target}"],
    "export --otlp": ["export", "--db", "{db}", "--otlp", "{target}"],
    "contract infer -o": ["contract", "infer", str(HEALTHY), "-o", "{target}"],
    "regress -o": ["regress", str(HEALTHY), "-o", "{target}"],
}


@pytest.mark.parametrize("command", OUTPUTS)
def test_an_output_onto_a_named_pipe_is_refused_and_the_pipe_stays(tmp_path, database, command):
    target = tmp_path / "out" / "pipe"
    target.parent.mkdir()
    os.mkfifo(target)
    line = error_line(run_cli(*_filled(OUTPUTS[command], target=target, db=database)))
    assert str(target) in line and "named pipe" in line
    assert [p.name for p in target.parent.iterdir()] == ["pipe"] and target.is_fifo()


@pytest.mark.parametrize("command", ["sanitize -o", "report -o"])
def test_an_output_onto_a_device_is_refused_and_the_device_stays(tmp_path, database, command):
    """The device is a private null device made for the test: a command that replaced it would
    not destroy the machine's /dev/null."""
    target = tmp_path / "out" / "null"
    target.parent.mkdir()
    try:
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root (CI runs as root); the named-pipe case covers the rule")
    line = error_line(run_cli(*_filled(OUTPUTS[command], target=target, db=database)))
    assert str(target) in line and "character device" in line
    assert target.is_char_device() and [p.name for p in target.parent.iterdir()] == ["null"]


@pytest.mark.parametrize("command, limit", [("report -o", 8 * 1024), ("contract infer -o", 256)])
def test_an_output_that_meets_a_full_disk_leaves_the_previous_file_whole(tmp_path, database, command, limit):
    """A file-size limit (which binds root too) stands in for a full disk. The database leaves WAL
    mode first: a reader of a WAL database writes its shared-memory index, which the limit binds too."""
    with sqlite3.connect(database) as conn:
        conn.execute("pragma journal_mode = delete")
    target = tmp_path / "out" / "previous.txt"
    target.parent.mkdir()
    target.write_text("the previous output\n")
    line = error_line(run_cli(*_filled(OUTPUTS[command], target=target, db=database),
                              preexec_fn=_with_file_size_limit(limit)))
    assert str(target) in line and "cannot write" in line
    assert target.read_text() == "the previous output\n"
    assert [p.name for p in target.parent.iterdir()] == ["previous.txt"]


def test_an_output_replacing_a_file_keeps_its_permissions(tmp_path, database):
    target = tmp_path / "private.html"
    target.write_text("old")
    target.chmod(0o600)
    assert run_cli("report", "--db", database, "-o", target).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and "<html" in target.read_text()
