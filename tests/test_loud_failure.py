"""A database that cannot be written is said so, loudly, once (issue 16): `analyze` exits non-zero
with one line and leaves no half-written file, `run` refuses to start, a live proxy reports the
first failure, counts what it drops and exits non-zero, and a killed session shows as such."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import RECORDINGS, raw_request
from pollwatch.cli.app import main
from pollwatch.sources.analysis import analyze_recordings
from pollwatch.store.database import Session, Store
from test_hostile_text import _HostileServer

CLI = [sys.executable, "-c", "from pollwatch.cli.app import main; main()"]


@contextlib.contextmanager
def read_only(path: Path):
    """`path` (a file or a folder) cannot be written, even by root (immutable), while inside."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: nothing is read-only")
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield path
        finally:
            path.chmod(mode)


def _analyzed(tmp_path: Path) -> Path:
    db = tmp_path / "incident.sqlite"
    analyze_recordings([RECORDINGS / "healthy.flows"], db)
    return db


def test_analyze_into_a_read_only_database_exits_non_zero_with_one_line_and_changes_nothing(tmp_path):
    db = _analyzed(tmp_path)
    before = db.read_bytes()
    with read_only(db):
        result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / "cached-status.flows"), "--db", str(db)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and str(db) in result.output
    assert "cannot write" in result.output and db.read_bytes() == before


def test_analyze_into_a_read_only_folder_exits_non_zero_and_creates_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        result = CliRunner().invoke(main, ["analyze", str(RECORDINGS / "healthy.flows"), "--db", str(folder / "new.sqlite")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []


def _with_file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("limit", [16 * 1024, 160 * 1024])
def test_analyze_on_a_full_disk_exits_non_zero_and_leaves_no_half_written_file(tmp_path, limit):
    """A file-size limit (which binds root too) stands in for a full disk: once while the schema
    is written, once while the rows are."""
    db = tmp_path / "full.sqlite"
    done = subprocess.run([*CLI, "analyze", str(RECORDINGS / "crud-sync.flows"), str(RECORDINGS / "shared-cache.flows"),
                           "--db", str(db)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_with_file_size_limit(limit))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(db) in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_store_that_cannot_write_keeps_a_bounded_backlog_and_counts_what_it_drops(tmp_path, monkeypatch):
    import pollwatch.store.database as database

    monkeypatch.setattr(database, "BACKLOG_LIMIT", 50)
    monkeypatch.setattr(database, "FLUSH_INTERVAL", 0.01)
    db = _analyzed(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("create trigger full before insert on findings begin select raise(abort, 'disk is full'); end")
    conn.commit()
    conn.close()
    errors: list[str] = []
    store = Store(db, Session(), on_error=errors.append).start()
    from pollwatch.core.findings import Finding, Severity
    for n in range(400):
        store.submit_findings([Finding(key=f"k{n}", code="status-error", severity=Severity.WARNING, ts=1.0,
                                       message="m", job_key=None, job_id=None, flow_id=None)])
        if n % 40 == 0:
            time.sleep(0.03)
    store.close()
    assert len(errors) == 1 and "disk is full" in errors[0]
    assert store.rows_lost == 400 and store.rows_written == 0


def test_run_refuses_an_unwritable_database_at_start_with_one_line(tmp_path):
    db = _analyzed(tmp_path)
    with read_only(db):
        done = subprocess.run([*CLI, "run", "--port", "0", "--db", str(db)], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot write" in done.stderr and str(db) in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Proxy:
    """`pollwatch run` as a user starts it; `.port` for `raw_request`."""

    def __init__(self, db: Path) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen([*CLI, "run", "--port", str(self.port), "--db", str(db)], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=os.environ | {"PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise AssertionError("pollwatch run did not start")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        return self.process.returncode, output


def test_a_live_proxy_that_cannot_write_says_so_once_and_exits_non_zero_reporting_the_lost_rows(tmp_path):
    db = _analyzed(tmp_path)
    conn = sqlite3.connect(db)  # writable at start; every write of the session fails afterwards
    conn.execute("create trigger full before insert on sessions begin select raise(abort, 'disk is full'); end")
    conn.commit()
    conn.close()
    origin = _HostileServer()
    try:
        proxy = _Proxy(db)
        for _ in range(5):
            raw_request(proxy, "POST", origin.origin + "/api/b")
            time.sleep(0.3)
        code, output = proxy.stop()
    finally:
        origin.shutdown()
        origin.server_close()
    assert output.count("cannot write to") == 1, output
    lost = re.search(r"(\d+) row\(s\) could not be written", output)
    assert lost and int(lost.group(1)) >= 5, output
    assert code == 1


def test_a_session_whose_process_was_killed_shows_its_end_as_unknown(tmp_path):
    db = tmp_path / "killed.sqlite"
    script = (f"from pollwatch.store.database import Session, Store; import os, time; "
              f"s = Store({str(db)!r}, Session(label='doomed')).start(); time.sleep(1.5); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", script], timeout=60)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["sessions", "--db", str(db)])
    assert result.exit_code == 0 and "unknown (process killed)" in result.output
    assert "doomed" in result.output


def test_a_session_still_being_written_is_shown_open_not_killed(tmp_path):
    db = tmp_path / "open.sqlite"
    with Store(db, Session(label="running")):
        time.sleep(1.0)
        result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["sessions", "--db", str(db)])
    assert "still open" in result.output and "killed" not in result.output
