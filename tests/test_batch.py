"""Live flows handled in small batches once the proxy runs, when `pollwatch_batch` asks for it
(mitm/batch.py): the same answers as flow by flow, none lost, none held longer than a batch's
time, and flow by flow where it must be."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time

import pytest
from mitmproxy import exceptions, io
from mitmproxy.addons.clientplayback import ClientPlayback
from mitmproxy.addons.save import Save
from mitmproxy.test import taddons

from pollwatch.mitm import batch
from pollwatch.mitm.addon import PollWatch
from pollwatch.mitm.fix import FixSwitch
from test_addon_hooks import create_flow, make_flow, poll_flow


class Updates:
    """Records mitmproxy's `update` hook: the flows an addon announced it changed."""

    def __init__(self) -> None:
        self.flows: list = []

    def update(self, flows) -> None:
        self.flows += flows


@pytest.fixture
async def running(tmp_path):
    """A watcher inside a proxy that runs (its `running` hook called in the test's event loop)."""
    addon, updates = PollWatch(), Updates()
    with taddons.context(addon, updates) as tctx:
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"), pollwatch_batch=64)
        addon.running()
        yield addon, tctx, updates
        addon.done()


def polled_job() -> list:
    return [create_flow(), poll_flow("running"), poll_flow("running", cache="max-age=30"), poll_flow("succeeded")]


async def test_a_live_flow_waits_in_the_batch_and_is_handled_within_its_time(running):
    addon, _, _ = running
    addon.response(create_flow())
    assert not addon.tracker.jobs and len(addon.batch) == 1
    await asyncio.sleep(batch.SECONDS + 0.05)
    assert [j.job_id for j in addon.tracker.jobs.values()] == ["e-1"] and len(addon.batch) == 0


async def test_a_batch_gives_the_answers_flow_by_flow_handling_gives(running, tmp_path):
    addon, _, _ = running
    flows = polled_job()
    for flow in flows:
        addon.response(flow)
    addon.batch.flush()
    one_by_one = PollWatch()
    with taddons.context(one_by_one) as tctx:
        tctx.configure(one_by_one, pollwatch_db="")
        alone = polled_job()
        for flow in alone:
            one_by_one.response(flow)
        [job], [same] = addon.tracker.jobs.values(), one_by_one.tracker.jobs.values()
    assert [s.value for s in job.states] == [s.value for s in same.states] == ["queued", "running", "succeeded"]
    assert [f.marked for f in flows] == [f.marked for f in alone] and any(f.marked for f in flows)
    assert [f.comment for f in flows] == [f.comment for f in alone]


async def test_flows_a_batch_marked_or_commented_are_announced_to_other_addons(running):
    addon, _, updates = running
    flows = polled_job()
    for flow in flows:
        addon.response(flow)
    addon.batch.flush()
    assert updates.flows == [f for f in flows if f.comment] and len(updates.flows) == 2  # the creation, the cached poll


async def test_a_full_batch_is_handled_in_a_callback_soon_not_in_the_hook(running):
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_batch=2)
    addon.response(create_flow())
    addon.response(poll_flow("running"))
    assert not addon.tracker.jobs  # the second hook only queued its flow
    await asyncio.sleep(0)
    assert next(iter(addon.tracker.jobs.values())).polls == 1


async def test_a_long_batch_is_handled_a_chunk_per_callback(running):
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_batch=1000)
    addon.response(create_flow())
    for _ in range(2 * batch.CHUNK):
        addon.response(poll_flow("running"))
    addon.batch.drain()
    assert next(iter(addon.tracker.jobs.values())).polls == batch.CHUNK - 1
    await asyncio.sleep(0.01)
    assert next(iter(addon.tracker.jobs.values())).polls == 2 * batch.CHUNK and len(addon.batch) == 0


async def test_a_flow_that_is_not_live_is_handled_at_once_after_the_queued_ones(running):
    addon, _, _ = running
    addon.response(create_flow())
    replayed = poll_flow("running")
    replayed.live = False  # mitmdump -nr: recorded flows
    addon.response(replayed)
    [job] = addon.tracker.jobs.values()
    assert job.polls == 1 and len(addon.batch) == 0


async def test_by_default_each_flow_is_handled_in_its_hook(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="")
        addon.running()
        addon.response(create_flow())
        assert len(addon.tracker.jobs) == 1 and len(addon.batch) == 0
        addon.done()


async def test_batch_size_one_handles_each_flow_in_its_hook(running):
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_batch=1)
    addon.response(create_flow())
    assert len(addon.tracker.jobs) == 1


def test_a_batch_size_below_one_is_refused(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="pollwatch_batch"):
            tctx.configure(addon, pollwatch_db="", pollwatch_batch=0)


async def test_while_mitmproxy_writes_flows_to_a_file_the_file_holds_the_marks(tmp_path):
    """mitmproxy's writer saves a flow right after pollwatch's hook: each flow is handled in it."""
    addon, save, path = PollWatch(), Save(), tmp_path / "out.flows"
    with taddons.context(addon, save) as tctx:
        tctx.configure(addon, pollwatch_db="", pollwatch_batch=64)
        tctx.configure(save, save_stream_file=str(path))
        addon.running()
        for flow in polled_job():
            addon.response(flow)
            save.response(flow)
        addon.done()
        save.done()
    with path.open("rb") as file:
        saved = list(io.FlowReader(file).stream())
    assert "pollwatch: job e-1" in saved[0].comment and saved[2].marked == ":warning:"


async def test_what_the_tracker_knows_is_asked_only_after_the_queue_is_handled(running):
    addon, _, _ = running
    flow = create_flow()
    addon.response(flow)
    assert addon.job_key_of(flow) is not None
    addon.response(poll_flow("running"))
    assert addon.jobs()[0] == "1 job(s)" and next(iter(addon.tracker.jobs.values())).polls == 1


async def test_with_the_fix_switch_on_each_flow_is_handled_in_its_hook_on_the_original_response(running):
    addon, tctx, _ = running
    fix = FixSwitch(addon)
    tctx.configure(addon, pollwatch_fix="no-store")
    addon.response(create_flow())
    poll = poll_flow("running", cache="max-age=30")
    addon.response(poll)
    assert len(addon.batch) == 0 and "status-cacheable" in poll.comment
    fix.response(poll)
    assert poll.response.headers["cache-control"] == "no-store"


async def test_flows_still_queued_when_the_proxy_stops_are_stored(tmp_path):
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db=str(tmp_path / "pw.sqlite"), pollwatch_batch=64)
        addon.running()
        for flow in polled_job():
            addon.response(flow)
        assert len(addon.batch) == 4
        addon.done()
    with sqlite3.connect(tmp_path / "pw.sqlite") as db:
        assert db.execute("select count(*) from polls").fetchone()[0] == 4


async def test_the_ticker_handles_the_queue_before_the_time_based_rules(running):
    addon, _, _ = running
    addon.response(create_flow())
    addon.tick(10**10)  # long after: the job, handled first, is abandoned
    [job] = addon.tracker.jobs.values()
    assert job.abandoned


async def test_a_queued_flow_counts_as_live_though_mitmproxy_has_finished_it(running, caplog):
    """mitmproxy stops calling a flow live once it is done, before its batch comes: its findings
    are still errors of live traffic (recorded traffic's are logged as warnings)."""
    addon, _, _ = running
    flows = [create_flow(), poll_flow("succeeded"), poll_flow("running")]
    for flow in flows:
        addon.response(flow)
        flow.live = False
    with caplog.at_level(logging.WARNING, logger="pollwatch"):
        addon.batch.flush()
    assert any(r.levelno == logging.ERROR and "state-regression" in r.getMessage() for r in caplog.records)
    assert addon.seen_live


async def test_a_queued_response_is_read_as_pollwatchs_hook_saw_it(running):
    """Addons after pollwatch's (mitmproxy's modify_headers, a later script) may change the
    response before its batch comes; the findings are about the response the server sent."""
    addon, _, _ = running
    addon.response(create_flow())
    poll = poll_flow("running", cache="max-age=30")
    addon.response(poll)
    poll.response.headers["cache-control"] = "no-store"
    poll.response.set_content(b'{"id": "e-1", "status": "succeeded"}')
    addon.batch.flush()
    [job] = addon.tracker.jobs.values()
    assert job.last_state.value == "running" and "status-cacheable" in poll.comment


async def test_a_flow_replayed_while_queued_is_handled_as_the_response_it_had():
    """mitmproxy's client replay (`r` in mitmweb) reuses the flow: no response, is_replay set."""
    addon = PollWatch()
    with taddons.context(addon, ClientPlayback()) as tctx:
        tctx.configure(addon, pollwatch_db="", pollwatch_batch=64)
        addon.running()
        addon.response(create_flow())
        poll = poll_flow("running", cache="max-age=30")
        addon.response(poll)
        poll.live = False
        tctx.master.commands.call("replay.client", [poll])
        addon.batch.flush()
        [job] = addon.tracker.jobs.values()
        addon.done()
    assert [s.value for s in job.states] == ["queued", "running"] and poll.marked == ":warning:"


async def test_the_flow_filter_judges_the_flow_as_pollwatchs_hook_saw_it(running):
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_filter="~hs X-Tenant")
    flow = make_flow("POST", "http://api.test/api/exports", 202, '{"id": "e-1", "status": "queued"}',
                     {"Location": "/api/exports/e-1", "Content-Type": "application/json", "X-Tenant": "a"})
    addon.response(flow)
    flow.response.headers.pop("X-Tenant")  # a later script's response hook
    addon.batch.flush()
    assert len(addon.tracker.jobs) == 1


async def test_a_listener_that_asks_the_tracker_keeps_the_flows_in_arrival_order(running):
    """A listener reading the tracker flushes the queue from inside a chunk: the chunk's rest must
    still come before the flows after it (else `succeeded` then `running`: a false regression)."""
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_batch=1000)
    order = []
    addon.on_handled(lambda flow, update: (order.append(flow.metadata["n"]), addon.job_key_of(flow)))
    flows = [create_flow(), *(poll_flow("running") for _ in range(batch.CHUNK + 3)), poll_flow("succeeded")]
    for n, flow in enumerate(flows):
        flow.metadata["n"] = n
        addon.response(flow)
    addon.batch.drain()
    [job] = addon.tracker.jobs.values()
    assert order == list(range(len(flows))) and job.last_state.value == "succeeded"


async def test_under_more_flows_than_a_chunk_per_loop_turn_flows_still_wait_about_a_batchs_time(running):
    """Each callback takes a chunk and every flow that has waited its time: the queue cannot grow
    without end, so no flow waits much longer than SECONDS and a turn or two of the loop."""
    addon, _, _ = running
    waits, turns, handle = [], [], addon.batch._handle

    def timed(flow, observation):
        waits.append(time.monotonic() - flow.metadata["queued"])
        return handle(flow, observation)

    addon.batch._handle = timed
    gc.disable()  # a collector pause holds up the loop as much as anything the test is after
    try:
        for _ in range(150):
            began = time.monotonic()
            for flow in [create_flow(), *(poll_flow("running") for _ in range(3 * batch.CHUNK - 1))]:
                flow.metadata["queued"] = time.monotonic()  # many connections finishing in one turn
                addon.response(flow)
            await asyncio.sleep(0)
            turns.append(time.monotonic() - began)
        while len(addon.batch):
            await asyncio.sleep(0)
    finally:
        gc.enable()
    assert len(waits) == 150 * 3 * batch.CHUNK and max(waits) < batch.SECONDS + 2 * max(turns) + 0.02


async def test_a_listener_that_fails_is_counted_and_the_mark_still_announced(running):
    addon, _, updates = running
    addon.on_handled(lambda flow, update: 1 / 0)
    addon.response(create_flow())
    poll = poll_flow("running", cache="max-age=30")
    addon.response(poll)
    addon.batch.flush()
    assert poll.marked == ":warning:" and poll in updates.flows and addon.internal_errors == 2


async def test_a_failed_exchange_waits_in_the_batch_like_a_response(running):
    addon, _, _ = running
    addon.response(create_flow())
    failed = poll_flow("running")
    failed.response, failed.error = None, flow_error()
    addon.error(failed)
    assert len(addon.batch) == 2
    addon.batch.flush()
    [job] = addon.tracker.jobs.values()
    assert job.polls == 1


def flow_error():
    from mitmproxy.flow import Error
    return Error("connection closed by the server")


async def test_an_empty_fix_option_is_no_fix_and_leaves_batching_on(running):
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_fix="")
    addon.response(create_flow())
    assert len(addon.batch) == 1


async def test_with_origin_checks_on_each_flow_is_handled_in_its_hook(running):
    """A check copies the client's request (URL, credentials) as it is in the hook."""
    addon, tctx, _ = running
    tctx.configure(addon, pollwatch_verify=True)
    addon.response(create_flow())
    assert len(addon.batch) == 0 and len(addon.tracker.jobs) == 1
