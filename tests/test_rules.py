"""Every finding rule, one behaviour per test, through the Tracker with plain observations."""

import pytest

from helpers import API, Traffic, codes
from pollwatch.core.config import Config
from pollwatch.core.tracking import Tracker

DATE_OLD = "Mon, 01 Jan 2024 00:00:00 GMT"


def job(traffic):
    return next(iter(traffic.tracker.jobs.values()))


# --- job recognition and state sequence --------------------------------------------------------

def test_healthy_job_has_no_findings_and_collapsed_states(traffic):
    updates = [traffic.create(), traffic.poll("running"), traffic.poll("running"), traffic.poll("succeeded")]
    assert [c for u in updates for c in codes(u)] == []
    assert updates[-1].job.states == ["queued", "running", "succeeded"]
    assert updates[-1].job.terminal_state == "succeeded"


def test_transitions_carry_timestamps(traffic):
    traffic.create()
    update = traffic.poll("running", at=traffic.now)
    assert [(t.from_state, t.to_state, t.ts) for t in update.transitions] == [("queued", "running", update.poll.response_ts)]


def test_unrelated_traffic_is_ignored(traffic):
    assert traffic.exchange("GET", "/index.html", 200, body="<html>") is None


def test_202_monitor_without_state_is_running_then_303_is_succeeded(traffic):
    traffic.create("/api/reports/status/r-1", body={"reportId": "r-1"})
    assert traffic.poll(None, "/api/reports/status/r-1", status=202).poll.state == "running"
    assert traffic.poll(None, "/api/reports/status/r-1", status=303, headers={"Location": "/api/reports/r-1"}).poll.state == "succeeded"


def test_200_without_state_after_202s_on_a_monitor_is_succeeded(traffic):
    traffic.create("/op/r-1", body=b"")
    traffic.poll(None, "/op/r-1", status=202)
    assert traffic.poll(None, "/op/r-1", status=200, body=b"{}").poll.state == "succeeded"


def test_200_without_state_on_a_plain_job_is_not_a_state(traffic):
    traffic.create()
    assert traffic.poll(None, body=b"{}").poll.state is None


def test_201_with_azure_asyncoperation_creates_a_job_and_tracks_provisioning(traffic):
    op = f"{API}/subscriptions/s/operations/op-1?api-version=2020"
    traffic.exchange("PUT", "/subscriptions/s/vm/v1", 201, headers={"Azure-AsyncOperation": op},
                     body={"properties": {"provisioningState": "Creating"}})
    update = traffic.poll("InProgress", op, body={"status": "InProgress"})
    traffic.poll("Succeeded", op, body={"status": "Succeeded"})
    assert [s.value for s in job(traffic).states] == ["running", "succeeded"] and update.poll.matched_by == "canonical"


def test_google_operation_without_status_url_adopts_the_first_poll_url(traffic):
    traffic.exchange("POST", "/v1/operations", 202, body={"name": "operations/op-9", "done": False})
    update = traffic.poll(None, "/v1/operations/op-9", body={"name": "operations/op-9", "done": True, "response": {}})
    assert update.poll.matched_by == "first-poll" and codes(update) == []
    assert update.job.status_url == f"{API}/v1/operations/op-9" and update.job.terminal_state == "succeeded"


def test_get_answered_202_is_its_own_monitor(traffic):
    traffic.exchange("GET", "/repos/o/r/stats/contributors", 202, body=b"")
    update = traffic.exchange("GET", "/repos/o/r/stats/contributors", 200, body=b"[]")
    assert update.poll.state == "succeeded"


def test_a_result_download_containing_the_id_is_not_a_poll(traffic):
    traffic.create()
    assert traffic.exchange("GET", "/api/exports/e-1/download", 200, body="a,b\n1,2",
                            headers={"Content-Type": "text/csv"}) is None


# --- correlation ------------------------------------------------------------------------------

def test_accepted_without_job_reference(traffic):
    assert codes(traffic.create("", body={"message": "ok"})) == ["accepted-without-job-reference"]


def test_poll_through_another_url_with_the_job_id_is_non_canonical(traffic):
    traffic.create()
    assert codes(traffic.poll("running", "/api/v2/exports/e-1")) == ["non-canonical-status-url"]


def test_poll_with_reordered_query_parameters_is_canonical(traffic):
    traffic.create("/ops/o-1?api-version=2&x=1")
    assert codes(traffic.poll("running", "/ops/o-1?x=1&api-version=2")) == []


def test_poll_on_another_host_is_wrong_environment(traffic):
    traffic.create()
    update = traffic.poll(None, "http://staging.test:8080/api/exports/e-1", status=404, body={"error": "nf"})
    assert "wrong-environment" in codes(update) and "non-canonical-status-url" not in codes(update)


def test_mangled_id_matching_a_learnt_template_is_unknown_job(traffic):
    traffic.create()
    update = traffic.poll(None, "/api/exports/e-1x", status=404, body={"error": "not found"})
    assert "unknown-job" in codes(update)
    finding = next(f for f in update.findings if f.code == "unknown-job")
    assert finding.evidence["likely"] == "mangled-id" and finding.evidence["lookalike"] == "e-1"


@pytest.mark.parametrize("known, polled", [("e-1", "e-7"), ("live-ok-1", "live-fail-1"), ("job-alpha", "job-beta")])
def test_a_sibling_id_of_the_same_family_is_never_called_mangled(known, polled):
    traffic = Traffic(Tracker())
    traffic.create(f"/api/exports/{known}", body={"id": known, "status": "queued"})
    update = traffic.poll(None, f"/api/exports/{polled}", status=404, body={"error": "not found"})
    finding = next(f for f in update.findings if f.code == "unknown-job")
    assert finding.evidence["lookalike"] is None


def test_an_identical_id_is_never_its_own_lookalike():
    from pollwatch.core.lookalike import closest_id
    assert closest_id("e-1001", ["e-1001"]) is None and closest_id("e-100x", ["e-1001"]) == "e-1001"


def test_unlike_unknown_id_suggests_late_capture():
    traffic = Traffic(Tracker(Config(templates=["/api/exports/{id}"])))
    update = traffic.poll("running", "/api/exports/completely-different-id")
    finding = next(f for f in update.findings if f.code == "unknown-job")
    assert finding.evidence["likely"] == "capture-started-late"


def test_unknown_job_is_then_tracked_without_repeating(traffic):
    traffic.create()
    traffic.poll("running", "/api/exports/x-99")
    assert codes(traffic.poll("succeeded", "/api/exports/x-99")) == []


# --- errors -----------------------------------------------------------------------------------

def test_404_is_job_missing(traffic):
    traffic.create()
    assert codes(traffic.poll(None, status=404, body={"error": "not found"})) == ["job-missing"]


def test_410_is_job_expired_and_terminal(traffic):
    traffic.create()
    update = traffic.poll(None, status=410, body={"error": "gone"})
    assert codes(update) == ["job-expired"] and update.job.terminal_state == "expired"


def test_expired_state_word_is_job_expired(traffic):
    traffic.create()
    assert codes(traffic.poll("Expired")) == ["job-expired"]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_status_errors_and_never_a_state(traffic, status):
    traffic.create()
    update = traffic.poll(None, status=status, body={"status": "error"})
    assert codes(update) == ["status-error"] and update.poll.state is None


def test_unknown_state_word(traffic):
    traffic.create()
    update = traffic.poll("Baking")
    assert codes(update) == ["unknown-state-word"] and update.poll.state == "unknown"
    assert update.job.last_state == "queued"


# --- cache ------------------------------------------------------------------------------------

def test_cacheable_status_is_raised_once_per_job_with_a_count(traffic):
    traffic.create()
    first = traffic.poll("running", cache="max-age=30")
    second = traffic.poll("running", cache="max-age=30")
    assert codes(first) == ["status-cacheable"] and not first.findings[0].is_repeat
    assert second.findings[0].is_repeat and second.findings[0].key == first.findings[0].key
    assert second.findings[0].evidence["count"] == 2


def test_heuristic_freshness_is_cacheable(traffic):
    traffic.create()
    update = traffic.poll("running", cache=None, headers={"Last-Modified": DATE_OLD})
    assert "status-cacheable" in codes(update)
    assert update.findings[0].evidence["verdict"] == "heuristic"


@pytest.mark.parametrize("cc", ["no-store", "no-cache", "max-age=0"])
def test_safe_cache_headers_raise_nothing(traffic, cc):
    traffic.create()
    assert codes(traffic.poll("running", cache=cc)) == []


def test_shared_cache_hit(traffic):
    traffic.create()
    update = traffic.poll("running", cache="public, s-maxage=5, max-age=0", headers={"X-Cache": "HIT", "Age": "2"})
    assert set(codes(update)) == {"status-cacheable", "status-from-shared-cache"}


def test_304_is_not_modified_and_shows_the_stored_state(traffic):
    traffic.create()
    traffic.poll("queued", cache="no-cache", headers={"ETag": '"v1"'})
    update = traffic.poll(None, status=304, cache="no-cache", headers={"ETag": '"v1"'},
                          request_headers={"If-None-Match": '"v1"'}, body=b"")
    assert codes(update) == ["status-not-modified"]
    assert update.findings[0].evidence["stored_state"] == "queued"


def test_old_date_is_stale(traffic):
    traffic.create()
    assert codes(traffic.poll("running", headers={"Date": DATE_OLD})) == ["status-stale-date"]


def test_one_etag_for_two_states(traffic):
    traffic.create()
    traffic.poll("queued", headers={"ETag": '"v1"'})
    assert codes(traffic.poll("running", headers={"ETag": '"v1"'})) == ["etag-reused-across-states"]


def test_changing_etags_are_fine(traffic):
    traffic.create()
    traffic.poll("queued", headers={"ETag": '"v1"'})
    assert codes(traffic.poll("running", headers={"ETag": '"v2"'})) == []


def test_cache_served_older_state_is_stale_status(traffic):
    traffic.create()
    traffic.poll("succeeded", client="a")
    update = traffic.poll("running", client="b", cache="max-age=30", headers={"X-Cache": "HIT", "Age": "3"})
    assert "stale-status" in codes(update) and "state-regression" not in codes(update)


def test_304_keeping_an_older_state_than_observed_is_stale_status(traffic):
    traffic.create()
    traffic.poll("queued", cache="no-cache", headers={"ETag": '"v1"'}, client="browser")
    traffic.poll("running", cache="no-cache", headers={"ETag": '"v1"'}, client="other")
    update = traffic.poll(None, status=304, cache="no-cache", request_headers={"If-None-Match": '"v1"'},
                          body=b"", client="browser")
    assert {"status-not-modified", "stale-status"} <= set(codes(update))


# --- order ------------------------------------------------------------------------------------

def test_state_going_backwards_is_a_regression(traffic):
    traffic.create()
    traffic.poll("running")
    assert codes(traffic.poll("queued")) == ["state-regression"]


def test_terminal_state_changing_to_another(traffic):
    traffic.create()
    traffic.poll("succeeded")
    assert "terminal-state-changed" in codes(traffic.poll("failed"))


def test_overlapping_polls_answered_out_of_order(traffic):
    traffic.create()
    t = traffic.now
    traffic.poll("succeeded", at=t + 0.5, took=0.1)              # sent second, answered first
    update = traffic.poll("running", at=t, took=1.0)              # sent first, answered last
    assert codes(update) == ["response-reordered"]


# --- lifecycle --------------------------------------------------------------------------------

def test_polls_after_terminal_are_counted_once(traffic):
    traffic.create()
    traffic.poll("succeeded")
    first = traffic.poll("succeeded")
    second = traffic.poll("succeeded")
    assert codes(first) == ["poll-after-terminal"] and second.findings[0].count == 2
    assert second.job.polls_after_terminal == 2


def test_polling_abandoned_at_end_of_capture(traffic):
    traffic.create()
    for _ in range(3):
        traffic.poll("running")
    traffic.exchange("GET", "/other", 200, at=traffic.now + 30)
    [finding] = traffic.tracker.finish()
    assert finding.code == "polling-abandoned" and finding.message.startswith("no poll for")


def test_capture_ending_before_a_terminal_state_counts_as_abandoned(traffic):
    traffic.create()
    for _ in range(3):
        traffic.poll("running")
    [finding] = traffic.tracker.finish()
    assert finding.code == "polling-abandoned" and finding.evidence["capture_ended"] is True


def test_live_tick_does_not_call_an_active_poller_abandoned(traffic):
    traffic.create()
    for _ in range(3):
        traffic.poll("running")
    assert traffic.tracker.tick(traffic.now) == []


def test_finished_jobs_are_not_abandoned_at_end_of_capture(traffic):
    traffic.create()
    traffic.poll("succeeded")
    assert traffic.tracker.finish() == []


def test_polling_abandoned_is_raised_once(traffic):
    traffic.create()
    traffic.poll("running")
    assert [f.code for f in traffic.tracker.tick(traffic.now + 120)] == ["polling-abandoned"]
    assert traffic.tracker.tick(traffic.now + 240) == []


def test_stuck_in_one_non_terminal_state(traffic):
    traffic.create()
    traffic.poll("running")
    t = traffic.now
    for i in range(1, 8):
        traffic.poll("running", at=t + 50 * i)
    assert "stuck-non-terminal" in [f.code for f in traffic.tracker.tick(t + 351)]


def test_polling_sooner_than_retry_after(traffic):
    traffic.create(headers={"Retry-After": "5"})
    t = traffic.now
    assert codes(traffic.poll("running", at=t, headers={"Retry-After": "5"})) == ["poll-too-fast"]


def test_polling_after_retry_after_is_fine(traffic):
    traffic.create(headers={"Retry-After": "1"})
    assert codes(traffic.poll("running", at=traffic.now + 1.5)) == []


def test_findings_have_catalogue_severity_and_actionable_line(traffic):
    traffic.create()
    traffic.poll("succeeded")
    finding = traffic.poll("running").findings[0]
    assert finding.severity == "error" and "Fix:" in finding.line() and finding.job_id == "e-1"


def test_memory_is_bounded_by_max_jobs():
    traffic = Traffic(Tracker(Config(max_jobs=5)))
    for i in range(20):
        traffic.create(f"/api/exports/e-{i}", body={"id": f"e-{i}", "status": "queued"})
    tracker = traffic.tracker
    assert len(tracker.jobs) <= 5
    assert {j.key for j in tracker.index._by_status_key.values()} == set(tracker.jobs)
    assert {j.key for j in tracker.index._by_path.values()} == set(tracker.jobs)
    assert {j.key for jobs in tracker.index._by_id.values() for j in jobs} == set(tracker.jobs)


def test_404_from_another_host_is_not_job_missing(traffic):
    traffic.create()
    update = traffic.poll(None, "http://staging.test:8080/api/exports/e-1", status=404, body={"error": "nf"})
    assert codes(update) == ["wrong-environment"] and update.job.last_state == "queued"


def test_404_for_a_mangled_id_is_only_unknown_job(traffic):
    traffic.create()
    assert codes(traffic.poll(None, "/api/exports/e-x", status=404, body={"error": "nf"})) == ["unknown-job"]


def test_mangled_id_is_matched_to_the_newest_lookalike(traffic):
    traffic.create("/api/exports/e-1001", body={"id": "e-1001"})
    traffic.create("/api/exports/e-1005", body={"id": "e-1005"})
    update = traffic.poll(None, "/api/exports/e-100x", status=404, body={"error": "nf"})
    assert update.findings[0].evidence["lookalike"] == "e-1005"


def test_another_client_polling_after_someone_else_saw_the_end_is_not_after_terminal(traffic):
    traffic.create()
    traffic.poll("succeeded", client="checker")
    assert "poll-after-terminal" not in codes(traffic.poll("running", client="ui"))


def test_repeated_stale_deliveries_are_counted_not_repeated(traffic):
    traffic.create()
    traffic.poll("succeeded", client="checker")
    hit = {"X-Cache": "HIT", "Age": "1"}
    first = traffic.poll("queued", client="ui", cache="s-maxage=5", headers=hit)
    second = traffic.poll("queued", client="ui", cache="s-maxage=5", headers=hit)
    stale = [f for f in second.findings if f.code == "stale-status"]
    assert "stale-status" in codes(first) and stale[0].is_repeat and stale[0].count == 2


# --- edge cases found in review -----------------------------------------------------------------

def test_the_job_id_in_an_unrelated_url_on_another_host_is_not_a_poll(traffic):
    traffic.create("/api/exports/e-42", body={"id": "e-42", "status": "queued"})
    assert traffic.exchange("GET", "https://cdn.test/img/e-42", 404, body={"error": "nf"}) is None


def test_jobs_named_by_a_query_parameter_are_told_apart(traffic):
    traffic.create("/status?job=ja-101", body=b"")
    traffic.create("/status?job=jb-202", body=b"")
    traffic.poll("succeeded", "/status?job=jb-202")
    update = traffic.poll("running", "/status?job=ja-101&_=123")
    assert update.job.job_id == "ja-101" and "state-regression" not in codes(update)


def test_a_404_that_heals_does_not_end_the_job(traffic):
    traffic.create()
    traffic.poll(None, status=404, body={"error": "not yet"})
    traffic.poll("running")
    [finding] = traffic.tracker.finish()
    assert finding.code == "polling-abandoned"


def test_a_job_known_by_body_id_does_not_adopt_an_unrelated_url(traffic):
    traffic.create("", body={"id": "job-77"})
    assert traffic.exchange("GET", "/api/users/job-77/avatar", 200, body=b"png",
                            headers={"Content-Type": "image/png"}) is None


def test_a_new_get_monitor_is_a_job_not_an_unknown_one(traffic):
    traffic.exchange("GET", "/repos/o/r/stats/contributors", 202, body=b"")
    update = traffic.exchange("GET", "/repos/o/r/stats/commit_activity", 202, body=b"")
    assert codes(update) == [] and len(traffic.tracker.jobs) == 2


def test_a_finished_job_expiring_later_is_not_a_terminal_change(traffic):
    traffic.create()
    traffic.poll("succeeded")
    assert "terminal-state-changed" not in codes(traffic.poll(None, status=410, body={"error": "gone"}))


def test_an_error_body_carries_no_job_state(traffic):
    traffic.create()
    update = traffic.poll(None, status=401, body={"status": "error", "message": "token expired"})
    assert update.poll.state is None and update.job.last_state == "queued"


def test_retry_after_is_advice_to_the_client_that_got_it(traffic):
    traffic.create()
    traffic.poll("running", headers={"Retry-After": "5"}, client="a")
    assert "poll-too-fast" not in codes(traffic.poll("running", client="b"))


def test_a_cache_busting_poller_gets_one_non_canonical_finding(traffic):
    traffic.create()
    first = traffic.poll("running", "/api/exports/e-1?_=1")
    second = traffic.poll("running", "/api/exports/e-1?_=2")
    assert codes(first) == ["non-canonical-status-url"] and second.findings[0].is_repeat


def test_stuck_is_raised_once_not_on_every_tick(traffic):
    traffic.create()
    t = traffic.now
    for i in range(8):
        traffic.poll("running", at=t + 50 * i)
    assert [f.code for f in traffic.tracker.tick(t + 351)] == ["stuck-non-terminal"]
    assert traffic.tracker.tick(t + 352) == []


def test_a_get_monitor_answering_with_a_cacheable_202_is_flagged_at_once(traffic):
    update = traffic.exchange("GET", "/repos/o/r/stats/contributors", 202, body=b"",
                              headers={"Cache-Control": "public, max-age=60", "Last-Modified": DATE_OLD})
    assert codes(update) == ["status-cacheable"]


def test_a_304_is_healthy_once_the_etag_has_followed_the_state(traffic):
    traffic.create()
    traffic.poll("queued", headers={"ETag": '"q1"'}, cache="no-cache")
    traffic.poll("running", headers={"ETag": '"r1"'}, cache="no-cache")
    update = traffic.poll(None, status=304, body=b"", cache="no-cache", headers={"ETag": '"r1"'},
                          request_headers={"If-None-Match": '"r1"'})
    assert update.poll.state == "running" and "status-not-modified" not in codes(update)


def test_a_304_still_warns_while_the_etag_has_never_changed_with_the_state(traffic):
    traffic.create()
    traffic.poll("queued", headers={"ETag": '"v1"'}, cache="no-cache")
    update = traffic.poll(None, status=304, body=b"", cache="no-cache", headers={"ETag": '"v1"'},
                          request_headers={"If-None-Match": '"v1"'})
    assert "status-not-modified" in codes(update)


def test_304s_before_the_etag_first_follows_the_state_are_downgraded_to_info_then(traffic):
    traffic.create()
    traffic.poll("queued", headers={"ETag": '"q1"'}, cache="no-cache")
    early = traffic.poll(None, status=304, body=b"", cache="no-cache", headers={"ETag": '"q1"'},
                         request_headers={"If-None-Match": '"q1"'})
    assert [f.severity.value for f in early.findings if f.code == "status-not-modified"] == ["warning"]
    update = traffic.poll("running", headers={"ETag": '"r1"'}, cache="no-cache")
    [settled] = [f for f in update.findings if f.code == "status-not-modified"]
    assert settled.severity.value == "info" and "healthy revalidation" in settled.message
    assert settled.key == early.findings[0].key  # the same finding, amended, not a second one
