"""`pollwatch diff` with worker logs: each side's worker events on the polls' time axis, and the
polls its client got answered non-terminal after the worker had logged the job's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import RECORDINGS, database_with_worker_log
from pollwatch.cli.app import main

EVENTS = (  # shared-cache's e-1001: the client reads a cached `queued` until about +1.4 s
    (0.05, {"state": "running", "msg": "[bold red]picked up[/]"}),
    (0.5, {"state": "succeeded", "msg": "done"}),
)
HEALTHY = f"{RECORDINGS / 'healthy.flows'}:e-1001"


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return database_with_worker_log(tmp_path_factory.mktemp("worker-diff"), "shared-cache", "e-1001", EVENTS)


def _diff(*args: str) -> str:
    result = CliRunner().invoke(main, ["diff", *args], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    return result.output


def _json(*args: str) -> dict:
    return json.loads(_diff(*args, "--format", "json"))


def test_json_lists_a_database_sides_worker_events_on_the_polls_axis(db):
    side = _json(f"{db}:e-1001", HEALTHY)["a"]
    assert [(e["offset"], e["state"], e["source"].rsplit("/", 1)[-1]) for e in side["worker_events"]] == [
        (0.05, "running", "worker.jsonl:1"), (0.5, "succeeded", "worker.jsonl:2")]
    assert side["worker_end"] == 0.5


def test_json_counts_the_polls_answered_non_terminal_after_the_workers_end(db):
    result = _json(f"{db}:e-1001", HEALTHY)
    marked = [row["a"] for row in result["timeline"] if row["a"] and row["a"]["behind_worker"]]
    assert result["a"]["polls_behind_worker"] == len(marked) > 0
    assert all(p["state"] == "queued" and p["offset"] > 0.5 for p in marked)


def test_a_side_without_worker_events_has_none(db):
    side = _json(f"{db}:e-1001", HEALTHY)["b"]
    assert (side["worker_events"], side["worker_end"], side["polls_behind_worker"]) == ([], None, 0)


def test_the_table_lists_the_worker_log_beside_the_polls(db):
    out = _diff(f"{db}:e-1001", HEALTHY)
    assert "worker log (offsets from each job's creation, as the polls above)" in out
    assert "+0.05" in out and "+0.50" in out and "succeeded" in out


def test_the_table_marks_polls_answered_non_terminal_after_the_workers_end(db):
    out = _diff(f"{db}:e-1001", HEALTHY)
    assert "queued*" in out
    assert "A: the worker logged its end at +0.50s;" in out and "answered non-terminal (marked *)" in out


def test_the_table_prints_markup_from_the_log_literally(db):
    assert "[bold red]picked up[/]" in _diff(f"{db}:e-1001", HEALTHY)


def test_worker_log_option_joins_a_log_to_a_recording_side(db):
    log = db.parent / "worker.jsonl"
    side = _json(f"{RECORDINGS / 'shared-cache.flows'}:e-1001", HEALTHY, "--worker-log", str(log))["a"]
    assert side["worker_end"] == 0.5 and side["polls_behind_worker"] > 0


def test_without_worker_events_the_table_has_no_worker_section():
    assert "worker log" not in _diff(f"{RECORDINGS / 'shared-cache.flows'}:e-1001", HEALTHY)
