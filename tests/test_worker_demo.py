"""The sample API's worker log, followed by a real mitmdump during the demo: the shared-cache and
replica-lag scenarios show the worker findings, the healthy ones show nothing."""

from __future__ import annotations

import json
import sqlite3

import pytest

from pollwatch.demo import SCENARIOS
from pollwatch.demo.runner import run_demo

HEALTHY = [name for name in SCENARIOS if name.startswith("healthy")]
WITH_WORKER = ["shared-cache", "replica-lag"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker-demo")
    scenarios = [SCENARIOS[name] for name in [*HEALTHY, *WITH_WORKER]]
    return run_demo(scenarios, db=folder / "demo.sqlite", record=None, worker_log=folder / "worker.jsonl")


def result(demo_run, name):
    return next(r for r in demo_run.results if r.scenario.name == name)


def test_the_sample_api_logs_each_transition_with_job_id_and_the_creating_request_id(demo_run):
    lines = [json.loads(line) for line in (demo_run.db.parent / "worker.jsonl").read_text().splitlines()]
    job = result(demo_run, "healthy").jobs[0]
    mine = [line for line in lines if line["job_id"] == job["job_id"]]
    assert [line["state"] for line in mine] == ["queued", "running", "succeeded"]
    with sqlite3.connect(demo_run.db) as conn:
        [(ids,)] = conn.execute("select ids from polls where job_key = ? and kind = 'create'", (job["key"],))
    assert {line["request_id"] for line in mine} == {json.loads(ids)["x-request-id"]}


@pytest.mark.parametrize("name", WITH_WORKER)
def test_faulty_scenarios_show_their_worker_findings(demo_run, name):
    found = result(demo_run, name)
    assert found.error is None and set(found.scenario.worker_codes) <= found.codes


def test_a_cached_state_behind_the_worker_is_also_stale_status(demo_run):
    key = result(demo_run, "shared-cache").jobs[0]["key"]
    with sqlite3.connect(demo_run.db) as conn:
        codes = {r[0] for r in conn.execute("select code from findings where job_key = ? and key like '%:worker'",
                                            (key,))}
    assert "stale-status" in codes


def test_the_lagging_replica_is_told_apart_from_a_cache(demo_run):
    key = result(demo_run, "replica-lag").jobs[0]["key"]
    with sqlite3.connect(demo_run.db) as conn:
        [evidence] = [json.loads(r[0]) for r in conn.execute(
            "select evidence from findings where job_key = ? and code = 'worker-ahead-of-status'", (key,))]
    assert evidence["served_by"] == "origin" and evidence["worker_state"] == "succeeded" and evidence["lag_seconds"] > 0


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_scenarios_raise_nothing_with_the_worker_log_followed(demo_run, name):
    found = result(demo_run, name)
    assert found.error is None and found.codes == set()


def test_every_worker_event_of_the_demo_joins_its_job(demo_run):
    with sqlite3.connect(demo_run.db) as conn:
        total, linked = conn.execute("select count(*), count(job_key) from worker_events").fetchone()
        unlinked = conn.execute("select count(*) from findings where code = 'worker-log-unlinked'").fetchone()[0]
    assert total > 0 and linked == total and unlinked == 0
