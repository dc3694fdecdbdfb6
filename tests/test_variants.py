"""`pollwatch variants`: failure cases derived from the recorded healthy job keep its URLs,
headers and body shapes, change only what each case needs, and analyse as that case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mitmproxy import io

from helpers import RECORDINGS
from pollwatch.cli.app import main
from pollwatch.sources.analysis import analyze_recordings
from pollwatch.store.query import list_findings, list_jobs
from pollwatch.store.reading import open_database
from pollwatch.testing.cases import CASES, load_variant
from pollwatch.testing.variants import derive, serving_file

HEALTHY = RECORDINGS / "healthy.flows"
STATUS_URL = "http://127.0.0.1:18180/api/exports/e-1001"


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("variants")
    written, skipped = derive(str(HEALTHY), out)
    assert [v.name for v in written] == list(CASES) and skipped == []
    return out


def flows(path: Path) -> list:
    with path.open("rb") as f:
        return list(io.FlowReader(f).stream())


def status_polls(path: Path) -> list:
    return [f for f in flows(path) if f.request.pretty_url == STATUS_URL]


def states(polls: list) -> list:
    return [json.loads(f.response.content)["status"] if f.response.content else None for f in polls]


def test_every_variant_keeps_the_recorded_urls(variants):
    recorded = {f.request.pretty_url for f in flows(HEALTHY)}
    for name in CASES:
        assert {f.request.pretty_url for f in flows(variants / f"{name}.flows")} <= recorded, name


def test_slow_polls_running_many_more_times_each_asking_for_retry_after(variants):
    polls = status_polls(variants / "slow.flows")
    running = [f for f in polls if states([f]) == ["running"]]
    assert len(running) >= 3 * 7 and states(polls)[-1] == "succeeded"
    asked = [f.response.headers.get("Retry-After") for f in running]
    assert set(asked) == {None, "1"} and asked[-1] == "1"


def test_failed_ends_in_the_failed_state_with_an_error_body_and_no_result(variants):
    last = json.loads(status_polls(variants / "failed.flows")[-1].response.content)
    assert last == {"id": "e-1001", "status": "failed", "error": {"code": "JobFailed", "message": "the job failed"}}


def test_expired_answers_410_gone_with_an_expired_state(variants):
    last = status_polls(variants / "expired.flows")[-1]
    assert last.response.status_code == 410 and json.loads(last.response.content)["status"] == "expired"


def test_cached_sends_max_age_on_every_status_response_and_nothing_else_changes(variants):
    cached, healthy = status_polls(variants / "cached.flows"), status_polls(HEALTHY)
    assert {f.response.headers["Cache-Control"] for f in cached} == {"max-age=30"}
    assert [f.response.content for f in cached] == [f.response.content for f in healthy]


def test_etag_stuck_sends_one_etag_with_every_state(variants):
    polls = status_polls(variants / "etag-stuck.flows")
    assert len({f.response.headers["ETag"] for f in polls}) == 1 and len(set(states(polls))) == 3


def test_reordered_answers_an_older_poll_after_a_newer_one(variants):
    polls = status_polls(variants / "reordered.flows")
    late = [(a, b) for a, b in zip(polls, polls[1:])
            if b.request.timestamp_start < a.request.timestamp_start]
    assert len(late) == 1
    newer, older = late[0]
    assert states([newer, older]) == ["running", "queued"]
    assert older.response.timestamp_end > newer.response.timestamp_end


@pytest.mark.parametrize("name", list(CASES))
def test_analysis_of_each_variant_gives_its_findings_and_terminal_state(variants, tmp_path, name):
    analyze_recordings([variants / f"{name}.flows"], tmp_path / "a.sqlite")
    conn = open_database(tmp_path / "a.sqlite")
    codes = {f["code"] for f in list_findings(conn)}
    [job] = list_jobs(conn)
    assert codes == set(CASES[name].codes)
    assert job["terminal_state"] == CASES[name].final_state


def test_each_variant_says_what_a_correct_client_must_do(variants):
    variant, path = load_variant(variants, "cached")
    assert variant.case.final_state == "succeeded" and "no-store" in variant.case.must
    assert variant.create_url == "http://127.0.0.1:18180/api/exports?fault=healthy"
    first = flows(path)[0]
    assert first.comment.startswith("pollwatch variant cached of healthy.flows:e-1001: a correct client must")
    assert first.metadata["pollwatch_variant"]["case"]["name"] == "cached"


def test_served_variants_are_in_request_order_and_keep_answering_the_last_state(variants, tmp_path):
    serving_file(variants, "reordered", tmp_path / "served.flows")
    served = [f for f in flows(tmp_path / "served.flows") if f.request.pretty_url == STATUS_URL]
    starts = [f.request.timestamp_start for f in served[:-5]]
    assert starts == sorted(starts)
    assert states(served[-6:]) == ["succeeded"] * 6


def test_a_job_whose_state_is_its_status_code_gets_no_failed_variant_but_a_note(tmp_path):
    written, skipped = derive(str(RECORDINGS / "healthy-monitor.flows"), tmp_path)
    assert "failed" not in {v.name for v in written} and any(s.startswith("failed: ") for s in skipped)


def test_a_job_that_did_not_succeed_is_refused_with_one_line():
    result = CliRunner().invoke(main, ["variants", f"{RECORDINGS / 'failed.flows'}:e-1001", "-o", "unused"])
    assert result.exit_code == 1 and "must be created and end succeeded" in result.output


def test_the_command_writes_the_chosen_cases_and_reports_them_as_json(tmp_path):
    result = CliRunner().invoke(main, ["variants", f"{HEALTHY}:e-1001", "-o", str(tmp_path), "--case", "failed",
                                       "--case", "slow", "--slow-polls", "12", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [v["case"]["name"] for v in report["variants"]] == ["slow", "failed"]
    assert report["variants"][0]["status_polls"] == 13  # 12 waiting (3 queued, 9 running), 1 succeeded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.flows", "failed.json", "slow.flows", "slow.json"]
