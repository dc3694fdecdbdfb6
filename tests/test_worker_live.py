"""Following a worker log live: rotation and truncation on real files, and a real mitmdump that
follows a log while a client polls a shared cache on loopback, so `client-behind-worker` is
logged the moment the cached state reaches the client."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from pollwatch.demo.api import SampleAPI, Timing
from pollwatch.demo.cache import SharedCache
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.mitm.worker_follow import LogFollower
from helpers import wait_for

SLOW = Timing(queued_s=30, running_s=30)  # the API itself never finishes: only the worker log says so


def test_the_follower_reads_only_complete_appended_lines(tmp_path):
    path = tmp_path / "w.log"
    path.write_text("one\ntw")
    follower = LogFollower(path)
    assert follower.read_new() == [(1, "one")]
    with open(path, "a") as f:
        f.write("o\n")
    assert follower.read_new() == [(2, "two")]


def test_the_follower_finishes_a_rotated_file_then_reads_the_new_one_from_its_start(tmp_path):
    path = tmp_path / "w.log"
    path.write_text("a\n")
    follower = LogFollower(path)
    assert follower.read_new() == [(1, "a")]
    with open(path, "a") as f:
        f.write("b\n")
    path.rename(tmp_path / "w.log.1")
    path.write_text("c\n")
    assert follower.read_new() == [(2, "b"), (1, "c")]


def test_the_follower_finishes_a_rotated_file_with_more_than_one_chunk_unread(tmp_path):
    path = tmp_path / "w.log"
    path.write_text("first\n")
    follower = LogFollower(path)
    follower.read_new()
    with open(path, "a") as f:
        f.writelines(f"{i} {'x' * 1000}\n" for i in range(3000))  # about 3 MiB: several chunks
    path.rename(tmp_path / "w.log.1")
    path.write_text("new\n")
    got = [text for _ in range(100) for _, text in follower.read_new()]
    assert len(got) == 3001 and got[2999].startswith("2999 ") and got[-1] == "new"


@pytest.mark.parametrize("before, after", [("first line\nsecond line\n", "new"),  # now shorter than the offset
                                           ("short\n", "a longer line written after truncation")])  # longer again
def test_the_follower_reads_a_truncated_file_again_from_its_start(tmp_path, before, after):
    path = tmp_path / "w.log"
    path.write_text(before)
    follower = LogFollower(path)
    follower.read_new()
    path.write_text(after + "\n")
    assert follower.read_new() == [(1, after)]


def test_a_missing_file_is_waited_for(tmp_path):
    follower = LogFollower(tmp_path / "later.log")
    assert follower.read_new() == []
    (tmp_path / "later.log").write_text("x\n")
    assert follower.read_new() == [(1, "x")]


def line(job_id, state, ts=None):
    return json.dumps({"ts": ts or time.time(), "job_id": job_id, "state": state}) + "\n"


def stale_poll_through(proxy_url, cache_url, log, disturb):
    """Create a shared-cache job, let the cache store `queued`, `disturb` the log (rotate or
    truncate), log the job's end, then poll again: the cache answers `queued`."""
    with httpx.Client(proxy=proxy_url, trust_env=False, timeout=10) as client:
        created = client.post(f"{cache_url}/api/exports?fault=shared-cache&ttl=30").json()
        job_id = created["id"]
        status = f"{cache_url}/api/exports/{job_id}"
        client.get(status)
        disturb(log, job_id)
        time.sleep(0.5)  # the follower looks every 50 ms
        answer = client.get(status)
    assert answer.headers.get("x-cache", "").upper().startswith("HIT")
    return job_id


def run_live(tmp_path, disturb):
    log = tmp_path / "worker.jsonl"
    log.write_text(line("before", "running"))
    db = tmp_path / "live.sqlite"
    with SampleAPI(timing=SLOW) as api, SharedCache(api.url) as cache, \
            ProxyProcess(db, options=[f"pollwatch_worker_log={log}", "pollwatch_worker_grace=0"]) as proxy:
        job_id = stale_poll_through(proxy.url, cache.url, log, disturb)
        assert wait_for(proxy, f"client-behind-worker job {job_id}"), proxy.output()
        proxy.stop()
    return db, job_id


def rotate(log, job_id):
    log.rename(log.with_name("worker.jsonl.1"))
    log.write_text(line(job_id, "succeeded", time.time() - 0.2))


def truncate(log, job_id):
    log.write_text(line(job_id, "succeeded", time.time() - 0.2))


def test_a_live_proxy_follows_a_rotated_worker_log_and_flags_the_cached_state(tmp_path):
    db, job_id = run_live(tmp_path, rotate)
    with sqlite3.connect(db) as conn:
        codes = {r[0] for r in conn.execute("select code from findings where job_id = ?", (job_id,))}
        linked = conn.execute("select count(*) from worker_events where job_key is not null").fetchone()[0]
    assert {"client-behind-worker", "stale-status"} <= codes and linked == 1


def test_a_live_proxy_follows_a_truncated_worker_log_and_flags_the_cached_state(tmp_path):
    db, job_id = run_live(tmp_path, truncate)
    with sqlite3.connect(db) as conn:
        unlinked = conn.execute("select evidence from findings where code = 'worker-log-unlinked'").fetchone()
    assert json.loads(unlinked[0])["unlinked"] == 1  # the line about job `before`


def test_a_backlog_of_100k_worker_lines_does_not_hold_up_other_clients(tmp_path):
    log = tmp_path / "worker.jsonl"
    start = time.time() - 1000
    with open(log, "w") as f:
        f.writelines(json.dumps({"ts": start + i / 1000, "job_id": f"w-{i}", "state": "running"}) + "\n"
                     for i in range(100_000))
    latencies = []
    with SampleAPI() as api, ProxyProcess(tmp_path / "db.sqlite", options=[f"pollwatch_worker_log={log}"]) as proxy, \
            httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
        for _ in range(60):  # about the first 3 s: while the backlog is parsed
            began = time.monotonic()
            client.get(f"{api.url}/api/exports/none")
            latencies.append(time.monotonic() - began)
            time.sleep(0.02)
    assert sorted(latencies)[int(len(latencies) * 0.9)] < 0.3, latencies
