"""`pollwatch diff`: a failing job next to a known-good one, first divergence first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollwatch.sources.analysis import analyze_recordings
from pollwatch.cli.app import main
from pollwatch.sources.diff import DiffError, diff

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"


def rec(name: str, job: str = "e-1001") -> str:
    return f"{RECORDINGS / name}.flows:{job}"


def test_cacheable_status_diverges_first_in_cache_headers_at_the_first_poll():
    first = diff(rec("cached-status"), rec("healthy"), "unused.sqlite")["first_divergence"]
    assert first["aspect"] == "cache headers" and first["where"] == "poll #1"
    assert first["a"].startswith("max-age=30") and first["b"].startswith("no-store")


def test_replica_lag_diverges_in_the_state_sequence():
    result = diff(rec("replica-lag"), rec("healthy"), "unused.sqlite")
    assert result["first_divergence"]["aspect"] == "state sequence"
    assert result["b"]["states"] == ["queued", "running", "succeeded"]


def test_wrong_environment_diverges_in_the_status_codes():
    first = diff(rec("wrong-env"), rec("healthy"), "unused.sqlite")["first_divergence"]
    assert (first["aspect"], first["where"], first["a"], first["b"]) == ("status codes", "poll #1", 404, 200)


def test_monitor_contract_diverges_in_the_status_url_shape():
    first = diff(rec("healthy-monitor", "r-1001"), rec("healthy"), "unused.sqlite")["first_divergence"]
    assert first["aspect"] == "status URL"


def test_a_job_against_itself_has_no_divergence():
    assert diff(rec("healthy"), rec("healthy"), "unused.sqlite")["first_divergence"] is None


def test_an_ambiguous_id_prefix_is_refused(tmp_path):
    db = tmp_path / "lost.sqlite"
    analyze_recordings([RECORDINGS / "lost-id.flows"], db)  # e-1001 and the mangled e-100x
    with pytest.raises(DiffError, match=r"'e-100' matches 2 jobs: .*\(e-1001,.*\(e-100x,"):
        diff("e-100", "e-1001", db)


def test_jobs_from_the_default_database_by_id(tmp_path):
    db = tmp_path / "lost.sqlite"
    analyze_recordings([RECORDINGS / "lost-id.flows"], db)
    result = diff("e-100x", "e-1001", db)
    assert (result["a"]["job_id"], result["b"]["job_id"]) == ("e-100x", "e-1001")


def test_timeline_pairs_polls_by_number():
    rows = diff(rec("cached-status"), rec("healthy"), "unused.sqlite")["timeline"]
    assert rows[0]["poll"] == 1 and rows[0]["a"]["status"] == 200 and rows[0]["b"]["state"] == "queued"
    assert rows[-1]["b"] is None  # the failing job polled longer


def test_command_highlights_the_first_divergence():
    result = CliRunner().invoke(main, ["diff", rec("cached-status"), rec("healthy")], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "first divergence: cache headers at poll #1" in result.output


def test_command_json(tmp_path):
    result = CliRunner().invoke(main, ["diff", rec("expired"), rec("healthy"), "--format", "json"])
    assert json.loads(result.output)["first_divergence"]["aspect"] == "status codes"


def test_unknown_job_is_a_one_line_error():
    result = CliRunner().invoke(main, ["diff", rec("healthy", "nope"), rec("healthy")])
    assert result.exit_code == 1 and "no job matches 'nope'" in result.output
