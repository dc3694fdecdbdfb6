"""`pollwatch replay`: a client re-run against a recording; pollwatch sees what it does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pollwatch.demo import SCENARIOS, poll_job
from pollwatch.store.query import list_findings
from pollwatch.store.reading import open_database

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
RECORDED_API = "http://127.0.0.1:18180"  # scripts/record_recordings.py records on fixed ports


class Replay:
    def __init__(self, recording: Path, db: Path) -> None:
        self.db = db
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("pollwatch")), "replay", str(recording), "--db", str(db),
             "--port", "0", "--set", "termlog_verbosity=info"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        for line in self.process.stdout:
            self.lines.append(line)
            if m := re.search(r"listening at 127\.0\.0\.1:(\d+)", line):
                self.url = f"http://127.0.0.1:{m.group(1)}"
                return
        raise AssertionError("replay did not start:\n" + "".join(self.lines))

    def codes(self) -> set[str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        conn = open_database(self.db)
        try:
            return {f["code"] for f in list_findings(conn)}
        finally:
            conn.close()


def run_client(replay: Replay, **options) -> list:
    create_url = SCENARIOS["ignores-terminal"].create_url(RECORDED_API)
    with httpx.Client(proxy=replay.url, trust_env=False, timeout=10) as client:
        return poll_job(client, create_url, interval=0.02, **options).states


def test_the_unfixed_client_reproduces_the_recorded_finding(tmp_path):
    replay = Replay(RECORDINGS / "ignores-terminal.flows", tmp_path / "unfixed.sqlite")
    states = run_client(replay, extra_polls_after_terminal=3)
    assert states[-4:] == ["succeeded"] * 4
    assert replay.codes() == {"poll-after-terminal"}


def test_the_fixed_client_shows_no_findings(tmp_path):
    replay = Replay(RECORDINGS / "ignores-terminal.flows", tmp_path / "fixed.sqlite")
    states = run_client(replay)
    assert states[-1] == "succeeded" and states.count("succeeded") == 1
    assert replay.codes() == set()


def test_polling_past_the_recording_gets_the_connection_closed(tmp_path):
    replay = Replay(RECORDINGS / "healthy.flows", tmp_path / "more.sqlite")
    status_url = None
    with httpx.Client(proxy=replay.url, trust_env=False, timeout=10) as client:
        created = client.post(SCENARIOS["healthy"].create_url(RECORDED_API))
        status_url = RECORDED_API + created.headers["Location"]
        with pytest.raises(httpx.HTTPError):
            for _ in range(100):
                client.get(status_url)
    replay.codes()
