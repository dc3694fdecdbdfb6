"""`pollwatch demo` end to end: every scenario's httpx client through a real mitmdump with the
addon must produce the scenario's findings (and healthy ones none)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pollwatch.demo import SCENARIOS
from pollwatch.demo.runner import run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    return run_demo(list(SCENARIOS.values()), db=folder / "demo.sqlite", record=folder / "demo.flows")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_produces_its_findings_through_the_proxy(demo_run, name):
    result = next(r for r in demo_run.results if r.scenario.name == name)
    assert result.error is None
    assert result.jobs, "no job was tracked"
    assert set(result.scenario.expected_codes) <= result.codes
    assert result.short_of is None, f"the client ended on {result.outcome.final_state}"
    if not result.scenario.expected_codes:
        assert result.codes == set(), f"false alarm: {result.codes}"
        assert result.jobs[0]["terminal_state"] in ("succeeded", "failed")


def test_the_verified_scenario_is_proved_by_pollwatchs_own_origin_checks(demo_run):
    result = next(r for r in demo_run.results if r.scenario.name == "etag-stuck-proved")
    assert result.outcome.final_state is None and {status for status, _ in result.outcome.seen} == {200, 304}
    with sqlite3.connect(demo_run.db) as conn:
        results = {row[0] for row in conn.execute(
            "select result from checks where job_key = ?", (result.jobs[0]["key"],))}
    assert "etag-reused-across-states" in results


def test_live_only_scenarios_stay_out_of_the_recording(demo_run):
    from mitmproxy import io

    live_only = {j["job_id"] for r in demo_run.results if r.scenario.proxy_options for j in r.jobs}
    with open(demo_run.record, "rb") as f:
        urls = [flow.request.url for flow in io.FlowReader(f).stream()]
    assert live_only and not any(job_id in url for url in urls for job_id in live_only)


def test_demo_leaves_a_recording_that_mitmproxy_reads(demo_run):
    from mitmproxy import io

    with open(demo_run.record, "rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert len(flows) > 50 and any(f.marked for f in flows) and any("pollwatch" in f.comment for f in flows)


def test_demo_command_shows_live_warnings_summary_and_next_steps(tmp_path):
    pollwatch = Path(sys.executable).with_name("pollwatch")
    done = subprocess.run([str(pollwatch), "demo", "--scenario", "cached-status", "--scenario", "healthy"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "warning status-cacheable job" in out
    assert "what pollwatch found" in out and "Next, try:" in out and "pollwatch warnings --db" in out
    assert (tmp_path / "pollwatch-demo.sqlite").exists() and (tmp_path / "pollwatch-demo.flows").exists()


def test_demo_lists_its_scenarios():
    pollwatch = Path(sys.executable).with_name("pollwatch")
    out = subprocess.run([str(pollwatch), "demo", "--list"], capture_output=True, text=True, timeout=60,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    assert all(name in out for name in SCENARIOS)


def test_unknown_scenario_is_a_usage_error():
    pollwatch = Path(sys.executable).with_name("pollwatch")
    done = subprocess.run([str(pollwatch), "demo", "--scenario", "nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown scenario nope" in done.stderr


def test_with_flows_handled_in_batches_every_scenario_produces_the_same_findings(demo_run, tmp_path):
    """`pollwatch_batch=64` (mitm/batch.py) through a real mitmdump, no recording (with `-w` each
    flow is handled in its hook): the findings of flow-by-flow handling, job for job."""
    batched = run_demo(list(SCENARIOS.values()), db=tmp_path / "batched.sqlite", record=None,
                       options=["pollwatch_batch=64"])
    assert {r.scenario.name: r.codes for r in batched.results} == {r.scenario.name: r.codes for r in demo_run.results}
    assert all(r.error is None and r.jobs for r in batched.results)
