"""Job contracts real APIs use, recognised by general mechanisms: jobs created by any 2xx whose body
names a running job, late binding, back references, resource-state polling, compound states,
jobs discovered from their polls, monitor semantics, and status references that name another host.
Each runs on the pure core and through the mitmproxy addon (the `traffic` fixture)."""

from __future__ import annotations

import pytest

from helpers import Traffic, codes
from pollwatch.core.tracking import Tracker


def jobs(traffic):
    return list(traffic.tracker.jobs.values())


def only_job(traffic):
    [job] = jobs(traffic)
    return job


def states(job) -> list[str]:
    return [s.value for s in job.states]


# --- jobs created by any 2xx ----------------------------------------------------------------------

@pytest.mark.parametrize("status", [200, 201])
def test_a_2xx_whose_body_names_a_planned_task_creates_a_job(traffic, status):
    traffic.exchange("POST", "/api/tasks", status, body={"id": "t-101", "state": "planned"})
    traffic.poll(None, "/api/tasks/t-101", body={"id": "t-101", "state": "running"})
    traffic.poll(None, "/api/tasks/t-101", body={"id": "t-101", "state": "succeeded"})
    job = only_job(traffic)
    assert job.create_status == status and states(job) == ["queued", "running", "succeeded"]


def test_a_synchronous_create_with_an_id_and_no_state_is_not_a_job(traffic):
    assert traffic.exchange("POST", "/api/users", 201, body={"id": "u-1", "name": "Ada"}) is None
    traffic.exchange("GET", "/api/users/u-1", 200, body={"id": "u-1", "name": "Ada"})
    assert jobs(traffic) == []


def test_a_create_answered_with_a_final_state_is_not_a_job(traffic):
    assert traffic.exchange("POST", "/api/orders", 201, body={"id": "o-1", "status": "completed"}) is None
    assert jobs(traffic) == []


@pytest.mark.parametrize("body, polled", [
    ({"id": "p-1", "status": "starting", "urls": {"get": "http://api.test:8080/v1/predictions/p-1"}},
     "/v1/predictions/p-1"),
    ({"job_status": {"url": "/v2/status/j-9"}, "status": "queued"}, "/v2/status/j-9"),
    ({"volume": {"id": "v-1", "status": "creating",
                 "links": [{"rel": "self", "href": "http://api.test:8080/v2/volumes/v-1"}]}}, "/v2/volumes/v-1"),
])
def test_nested_and_wrapped_references_give_the_status_url(traffic, body, polled):
    traffic.exchange("POST", "/v1/things", 201, body=body)
    assert traffic.tracker.jobs and only_job(traffic).status_url == "http://api.test:8080" + polled


def test_a_task_id_under_another_spelling_names_the_job(traffic):
    traffic.exchange("POST", "/api/task/async-apply/add", 200, body={"task-id": "9f1c0c2e-58a1-4bd1", "state": "PENDING"})
    traffic.poll(None, "/api/task/result/9f1c0c2e-58a1-4bd1", body={"task-id": "9f1c0c2e-58a1-4bd1", "state": "SUCCESS"})
    job = only_job(traffic)
    assert job.job_id == "9f1c0c2e-58a1-4bd1" and job.terminal_state.value == "succeeded"


# --- late binding and back references ---------------------------------------------------------------

def test_a_polled_url_naming_an_id_a_mutation_returned_belongs_to_that_mutation(traffic):
    upid = "UPID:node1:0000A1B2:0003C4D5:65F00000:qmstart:100:root@pam:"
    assert traffic.exchange("POST", "/api2/json/nodes/node1/qemu/100/status/start", 200, body={"data": upid}) is None
    update = traffic.poll(None, f"/api2/json/nodes/node1/tasks/{upid}/status", body={"data": {"status": "running"}})
    traffic.poll(None, f"/api2/json/nodes/node1/tasks/{upid}/status",
                 body={"data": {"status": "stopped", "exitstatus": "OK"}})
    job = only_job(traffic)
    assert update.poll.matched_by == "late-binding" and job.create_method == "POST"
    assert states(job) == ["running", "succeeded"] and [u.poll.kind for u in update.all()] == ["create", "poll"]


def test_a_status_document_naming_the_id_an_action_addressed_belongs_to_that_action(traffic):
    traffic.exchange("POST", "/v4/linode/instances/52557263/boot", 200, body={})
    event = {"id": 603805129, "status": "started", "entity": {"id": 52557263, "type": "linode"}}
    update = traffic.poll(None, "/v4/account/events/603805129", body=event)
    traffic.poll(None, "/v4/account/events/603805129", body=event | {"status": "finished"})
    job = only_job(traffic)
    assert update.poll.matched_by == "back-reference" and job.create_url.endswith("/52557263/boot")
    assert job.terminal_state.value == "succeeded"


def test_a_job_created_without_a_status_url_adopts_the_event_that_reports_it(traffic):
    traffic.exchange("POST", "/v4/linode/instances", 200, body={"id": 52557263, "status": "provisioning"})
    event = {"id": 603804661, "status": "started", "entity": {"id": 52557263}}
    traffic.poll(None, "/v4/account/events/603804661", body=event)
    traffic.poll(None, "/v4/account/events/603804661", body=event | {"status": "finished"})
    traffic.poll(None, "/v4/linode/instances/52557263", body={"id": 52557263, "status": "running"})
    job = only_job(traffic)
    assert job.status_url.endswith("/account/events/603804661") and job.polls == 2
    assert job.terminal_state.value == "succeeded"


def test_a_template_poll_for_an_id_a_mutation_returned_is_not_an_unknown_job(traffic):
    traffic.create()  # learns /api/exports/{id}
    traffic.exchange("POST", "/api/exports/batch", 200, body={"data": {"exportId": "e-2077"}})
    update = traffic.poll("running", "/api/exports/e-2077", body={"id": "e-2077", "status": "running"})
    assert "unknown-job" not in codes(update) and update.job.create_url.endswith("/api/exports/batch")


def test_unknown_job_names_a_late_capture_only_when_nothing_mentioned_the_id():
    traffic = Traffic(Tracker())
    traffic.create()
    traffic.exchange("GET", "/api/exports?page=1", 200, body={"items": [{"id": "e-5550"}]})
    update = traffic.poll(None, "/api/exports/zz-unrelated-9", status=404, body={"error": "not found"})
    [finding] = [f for f in update.findings if f.code == "unknown-job"]
    assert finding.evidence["likely"] == "capture-started-late"


# --- resource-state polling -------------------------------------------------------------------------

def test_a_created_resource_polled_until_available_succeeds(traffic):
    traffic.exchange("POST", "/v2/volumes", 202, body={"volume": {"id": "vol-4462", "status": "creating"}})
    traffic.poll(None, "/v2/volumes/vol-4462", body={"volume": {"id": "vol-4462", "status": "creating"}})
    traffic.poll(None, "/v2/volumes/vol-4462", body={"volume": {"id": "vol-4462", "status": "available"}})
    assert states(only_job(traffic)) == ["running", "succeeded"]


def test_a_delete_polled_until_the_resource_is_gone_succeeds_without_job_missing(traffic):
    traffic.exchange("DELETE", "/v2/volumes/vol-4462", 202, body=b"")
    traffic.poll(None, "/v2/volumes/vol-4462", body={"volume": {"id": "vol-4462", "status": "deleting"}})
    gone = traffic.poll(None, "/v2/volumes/vol-4462", status=404, body={"itemNotFound": {"code": 404}})
    job = only_job(traffic)
    assert states(job) == ["running", "succeeded"] and "job-missing" not in codes(gone)


def test_a_cancel_of_a_running_job_is_not_a_new_job(traffic):
    traffic.create()
    traffic.exchange("DELETE", "/api/exports/e-1", 200, body={"id": "e-1", "status": "cancelling"})
    traffic.poll("cancelled")
    assert only_job(traffic).terminal_state.value == "cancelled"


# --- compound states: a phase and an outcome ------------------------------------------------------------

@pytest.mark.parametrize("final, terminal", [
    ({"status": "completed", "conclusion": "failure"}, "failed"),
    ({"status": "completed", "conclusion": "success"}, "succeeded"),
    ({"status": "completed", "conclusion": "timed_out"}, "failed"),
    ({"life_cycle_state": "TERMINATED", "result_state": "CANCELED"}, "cancelled"),
    ({"state": "stopped", "result": "success"}, "succeeded"),
    ({"state": "stopped", "result": "error"}, "failed"),
    ({"status": "stopped", "exitstatus": "OK"}, "succeeded"),
    ({"status": "stopped", "exitstatus": "command 'qm start' failed: exit code 1"}, "failed"),
    ({"state": "stopped"}, "cancelled"),
    ({"life_cycle_state": "TERMINATED"}, "succeeded"),
    ({"state": "REVOKED"}, "cancelled"),
])
def test_a_final_phase_is_decided_by_the_outcome_beside_it(traffic, final, terminal):
    traffic.create()
    traffic.poll("running")
    update = traffic.poll(None, body={"id": "e-1", **final})
    assert update.poll.state == terminal and "unknown-state-word" not in codes(update)


# --- jobs discovered from their polls -------------------------------------------------------------------

def test_a_url_polled_until_terminal_without_a_creation_is_a_discovered_job(traffic):
    assert traffic.poll(None, "/api/runs/r-77", body={"id": "r-77", "status": "processing"}) is None
    update = traffic.poll(None, "/api/runs/r-77", body={"id": "r-77", "status": "succeeded"})
    job = only_job(traffic)
    assert job.created_by == "poll" and job.polls == 2 and states(job) == ["running", "succeeded"]
    assert [f.code for u in update.all() for f in u.findings] == ["creation-not-seen"]
    assert update.all()[0].findings[0].severity.value == "info"


def test_a_discovered_job_read_after_it_ended_is_read_not_polled(traffic):
    traffic.poll(None, "/api/runs/r-77", body={"id": "r-77", "status": "processing"})
    traffic.poll(None, "/api/runs/r-77", body={"id": "r-77", "status": "succeeded"})
    assert traffic.poll(None, "/api/runs/r-77", body={"id": "r-77", "status": "succeeded"}) is None
    assert only_job(traffic).polls == 2


def test_a_resource_whose_state_changes_like_a_users_is_not_discovered(traffic):
    for status in ("pending", "active", "active", "pending", "active"):
        assert traffic.poll(None, "/api/users/u-1", body={"id": "u-1", "status": status}) is None
    assert jobs(traffic) == []


def test_a_resource_read_again_and_again_is_not_a_job(traffic):
    for _ in range(3):
        assert traffic.poll(None, "/api/users/u-1", body={"id": "u-1", "status": "active"}) is None
    assert jobs(traffic) == []


# --- monitors and odd references ----------------------------------------------------------------------

def test_a_location_monitor_answering_204_at_once_is_done(traffic):
    traffic.exchange("DELETE", "/subscriptions/s/disks/d1", 202, headers={"Location": "/operations/op-1"}, body=b"")
    update = traffic.poll(None, "/operations/op-1", status=204, body=b"")
    assert update.poll.state == "succeeded" and only_job(traffic).terminal_state.value == "succeeded"


def test_a_protocol_relative_location_is_followed_on_the_host_the_client_called(traffic):
    traffic.exchange("POST", "/-/vaults/v1/jobs", 202, headers={"Location": "//vaults/v1/jobs/job-123"}, body=b"")
    first = traffic.poll(None, "/vaults/v1/jobs/job-123", body={"StatusCode": "InProgress", "status": "InProgress"})
    traffic.poll(None, "/vaults/v1/jobs/job-123", body={"status": "Succeeded"})
    job = only_job(traffic)
    assert codes(first) == ["status-url-off-host"] and job.terminal_state.value == "succeeded"
    assert "//vaults/v1/jobs/job-123" in first.findings[0].message


# --- healthy traffic stays quiet (each of these once made a job or a finding) ----------------------------

@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/orders", {"id": "ord-1001", "status": "pending"}),
    ("PUT", "/api/vms/vm-7", {"id": "vm-7", "name": "renamed", "status": "running"}),
    ("POST", "/v2/checkout/orders", {"id": "5O190127TN364715T", "status": "CREATED"}),
    ("POST", "/api/invitations", {"id": "inv-42", "status": "accepted"}),
    ("POST", "/api/login", {"user": {"id": "u-123", "status": "pending"}}),
])
def test_a_resource_answered_with_a_status_of_its_own_is_not_a_job(traffic, method, path, body):
    assert traffic.exchange(method, path, 201 if method == "POST" else 200, body=body) is None
    assert jobs(traffic) == []


def test_a_job_with_a_status_url_is_not_taken_over_by_a_document_naming_its_owner(traffic):
    traffic.exchange("POST", "/api/users/u-123/exports", 202, headers={"Location": "/api/exports/e-1"},
                     body={"id": "e-1", "status": "queued"})
    traffic.poll(None, "/api/orders/o-5", body={"id": "o-5", "status": "processing", "user_id": "u-123"})
    job = only_job(traffic)
    assert job.status_url.endswith("/api/exports/e-1") and job.polls == 0


def test_ids_a_graphql_answer_lists_do_not_make_later_reads_jobs(traffic):
    traffic.exchange("POST", "/graphql", 200, body={"data": {"orders": [{"id": "o-5"}, {"id": "o-6"}]}})
    traffic.poll(None, "/api/orders/o-5", body={"id": "o-5", "status": "processing"})
    assert jobs(traffic) == []


def test_a_result_link_is_followed_only_on_the_jobs_own_host(traffic):
    traffic.exchange("POST", "/zones/z1/servers/s-1/action", 202, headers={"Location": "/zones/z1/tasks/t-1"},
                     body={"task": {"id": "t-1", "status": "pending", "href_result": "/servers/s-1b"}})
    elsewhere = traffic.poll(None, "http://metrics.test:9000/v1/dashboards/s-1b", body={"status": "failed"})
    assert elsewhere is None and only_job(traffic).polls == 0


def test_a_cancel_action_of_a_job_in_flight_is_not_a_second_job(traffic):
    traffic.exchange("POST", "/api/tasks", 200, body={"taskId": "t-101", "state": "queued"})
    traffic.exchange("POST", "/api/tasks/t-101/cancel", 200, body={"taskId": "t-101", "state": "cancelling"})
    assert len(jobs(traffic)) == 1


def test_a_delete_followed_on_a_separate_monitor_that_answers_404_is_missing_not_done(traffic):
    traffic.exchange("DELETE", "/disks/d1", 202, headers={"Location": "/operations/op-1"}, body=b"")
    update = traffic.poll(None, "/operations/op-1", status=404, body={"error": "not found"})
    assert update.poll.state is None and "job-missing" in codes(update)


def test_an_adopted_job_gets_no_plain_word_as_its_id(traffic):
    traffic.exchange("POST", "/v4/instances", 200, body={"id": 52557263, "status": "provisioning"})
    traffic.poll(None, "/api/activity/latest", body={"status": "started", "entity": {"id": 52557263}})
    assert traffic.tracker.index._by_id.get("latest") is None


def test_forgotten_jobs_leave_no_status_url_behind():
    from pollwatch.core.config import Config

    traffic = Traffic(Tracker(Config(max_jobs=10)))
    for n in range(60):  # each job moves from its task URL to its result URL on the first poll
        traffic.exchange("POST", "/api/backups", 202, headers={"Location": f"/api/tasks/t-{n:03}"},
                         body={"task": {"id": f"t-{n:03}", "status": "pending", "href_result": f"/images/i-{n:03}"}})
        traffic.poll(None, f"/api/images/i-{n:03}", body={"image": {"id": f"i-{n:03}", "state": "available"}})
    index = traffic.tracker.index
    assert len(index._by_status_key) <= 2 * len(index.jobs)  # a task URL and a result URL each
    assert {j.key for j in index._by_status_key.values()} <= set(index.jobs)


def test_very_long_unknown_ids_are_not_compared_for_lookalikes():
    from pollwatch.core.lookalike import closest_id

    assert closest_id("x" * 65, ["x" * 64]) is None


def test_request_and_operation_ids_are_kept_by_name_including_configured_ones():
    from pollwatch.core.config import Config

    traffic = Traffic(Tracker(Config(id_headers=["X-Trace-Token"])))
    traffic.create(headers={"X-Request-Id": "req-1"})
    update = traffic.poll("running", headers={"x-trace-token": "tt-9", "x-unrelated": "no"},
                          request_headers={"Traceparent": "00-abc-01"})
    assert update.poll.ids == {"traceparent": "00-abc-01", "x-trace-token": "tt-9"}
    job = traffic.tracker.jobs[update.job.key]
    assert job.operation_ids == {"x-request-id": "req-1", "x-trace-token": "tt-9"}
    assert traffic.poll("running").poll.ids == {}
