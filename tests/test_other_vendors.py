"""Real recordings of four other vendors' job APIs (../shared/corpus/other-vendors, beside the
project), each in its own recording format: every operation a person reads in them
(`expected.json`) is tracked from its creating request to its terminal state, with no job the file
does not contain and no error-level finding, and with no hints given to pollwatch."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pollwatch.sources.analysis import analyze_recordings

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "other-vendors"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")
EXPECTED = json.loads((CORPUS / "expected.json").read_text()) if CORPUS.is_dir() else {}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def recording(request, tmp_path_factory):
    """One recording analysed on its own: (its expected operations, its jobs, its findings)."""
    db = tmp_path_factory.mktemp("vendors") / "vendor.sqlite"
    analyze_recordings([CORPUS / request.param], db)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    jobs = [dict(r) for r in conn.execute("select * from jobs order by created_at")]
    findings = [dict(r) for r in conn.execute("select code, severity, job_key, message from findings")]
    conn.close()
    return EXPECTED[request.param], jobs, findings


def path_of(url: str | None) -> str:
    return urlsplit(url or "").path


def job_for(operation: dict, jobs: list[dict]) -> dict:
    paths = {operation["status_url_path"], *operation.get("alt_status_url_paths", [])}
    method, _, create_path = operation["create"].partition(" ")
    found = [j for j in jobs if path_of(j["status_url"]) in paths and j["create_method"] == method
             and path_of(j["create_url"]) == create_path]
    assert len(found) == 1, f"{operation['create']} -> {paths}: {[(j['create_method'], j['create_url'], j['status_url']) for j in jobs]}"
    return found[0]


def test_every_operation_is_tracked_from_its_creation_to_its_terminal_state(recording):
    operations, jobs, _ = recording
    for operation in operations:
        job = job_for(operation, jobs)
        assert job["create_status"] == operation["create_status"]
        assert job["terminal_state"] == operation["terminal"]


def test_the_states_read_are_the_ones_a_person_reads(recording):
    operations, jobs, _ = recording
    for operation in operations:
        distinct = [s for i, s in enumerate(operation["states"]) if i == 0 or s != operation["states"][i - 1]]
        seen = json.loads(job_for(operation, jobs)["states"])
        assert seen[-len(distinct):] == distinct


def test_every_poll_a_person_counts_is_tied_to_its_job(recording):
    operations, jobs, _ = recording
    for operation in operations:
        assert job_for(operation, jobs)["polls"] >= operation["polls"]


def test_there_is_no_job_the_recording_does_not_contain(recording):
    operations, jobs, _ = recording
    assert len(jobs) == len(operations), [(j["create_method"], j["create_url"], j["status_url"]) for j in jobs]


def test_correct_traffic_has_no_error_level_finding(recording):
    _, _, findings = recording
    assert [f for f in findings if f["severity"] == "error"] == []
