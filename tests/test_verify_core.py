"""Active verification in the pure core: which polls are checked, how often, and what the origin's
answer means. No network here: the origin's answers are written down (see test_verify.py for the
real thing)."""

from __future__ import annotations

import json
from email.utils import formatdate

from helpers import Traffic
from pollwatch.core.tracking import Tracker
from pollwatch.core.verification import (
    CheckPlan,
    OriginAnswer,
    Reason,
    Schedule,
    plan_check,
)

URL = "http://api.test:8080/api/exports/e-1"


def answer(state: str | None, *, etag: str | None = None, status: int = 200, at: float = 0.0,
           date: float | None = None) -> OriginAnswer:
    headers = [("Content-Type", "application/json")] + ([("ETag", etag)] if etag else [])
    headers += [("Date", formatdate(date, usegmt=True))] if date is not None else []
    body = json.dumps({"id": "e-1", "status": state}).encode() if state else b""
    return OriginAnswer(sent_at=at, received_at=at + 0.01, status=status, headers=headers, body=body)


def started() -> Traffic:
    traffic = Traffic(Tracker())
    traffic.create()
    return traffic


def test_a_head_poll_is_never_checked():
    traffic = started()
    update = traffic.exchange("HEAD", "/api/exports/e-1", 200, headers={"Cache-Control": "max-age=30"})
    assert update is not None and update.poll is not None and plan_check(update, 5) is None


def test_a_poll_on_another_host_than_the_jobs_is_never_checked():
    traffic = started()
    update = traffic.poll("running", url="http://staging.test:8080/api/exports/e-1", cache="max-age=30")
    assert update is not None and "wrong-environment" in [f.code for f in update.findings]
    assert plan_check(update, 5) is None


def test_a_poll_with_a_terminal_state_is_never_checked():
    traffic = started()
    assert plan_check(traffic.poll("succeeded", cache="max-age=30"), 5) is None


def test_a_304_is_checked_against_the_etag_it_revalidated():
    traffic = started()
    update = traffic.poll(None, status=304, cache=None, request_headers={"If-None-Match": '"v1"'})
    plan = plan_check(update, 5)
    assert plan is not None and (plan.reason, plan.client_state, plan.client_etag) == (Reason.REVALIDATED, "queued", '"v1"')


def test_schedule_sends_one_check_per_interval_and_never_more_than_the_polls():
    schedule = Schedule(interval=2.0)
    plan = CheckPlan(job_key="j", flow_id="f", url=URL, reason=Reason.CACHEABLE, client_status=200,
                     client_state="queued", client_etag=None, client_at=0.0, client_produced_at=0.0, held=False)
    sent = []
    for i in range(40):  # a poll every 0.1 s for 4 s; each check answered at once
        now = i * 0.1
        if schedule.admit(plan, polls=i + 1, now=now):
            sent.append(round(now, 1))
            schedule.done("j")
    assert sent == [0.0, 2.0]
    assert not Schedule(interval=0).admit(plan, polls=0, now=0.0)


def test_an_equal_answer_to_a_304_is_recorded_as_checked_and_confirms_the_revalidation():
    traffic = started()
    update = traffic.poll(None, status=304, cache=None, request_headers={"If-None-Match": '"v1"'})
    plan = plan_check(update, 5)
    record, findings = traffic.tracker.verified(plan, answer("queued", etag='"v1"', at=traffic.now))
    assert (record.result, findings) == ("checked", [])
    assert traffic.tracker.jobs[plan.job_key].revalidation_confirmed


def test_the_same_etag_with_another_state_at_the_origin_is_etag_reused_across_states():
    traffic = started()
    plan = plan_check(traffic.poll(None, status=304, cache=None, request_headers={"If-None-Match": 'W/"v1"'}), 5)
    record, [finding] = traffic.tracker.verified(plan, answer("succeeded", etag='"v1"', at=traffic.now))
    assert (record.result, finding.code, finding.severity.value) == ("etag-reused-across-states",) * 2 + ("error",)
    assert finding.evidence["states"] == ["queued", "succeeded"] and finding.flow_id == plan.flow_id


def test_an_origin_ahead_of_a_shared_cache_hit_is_stale_status_with_both_states_etags_and_the_age_gap():
    traffic = started()
    update = traffic.poll("queued", cache="public, s-maxage=60", headers={"Age": "7", "ETag": '"q"'})
    plan = plan_check(update, 5)
    record, [finding] = traffic.tracker.verified(plan, answer("succeeded", etag='"s"', at=traffic.now))
    assert (plan.reason, record.result, finding.code) == (Reason.SHARED_CACHE, "stale-status", "stale-status")
    evidence = finding.evidence
    assert (evidence["client_state"], evidence["origin_state"]) == ("queued", "succeeded")
    assert (evidence["client_etag"], evidence["origin_etag"]) == ('"q"', '"s"')
    assert evidence["age_gap_seconds"] >= 7


def test_an_origin_ahead_of_a_fresh_origin_answer_is_no_error_until_a_cache_delivers_the_older_state():
    traffic = started()
    plan = plan_check(traffic.poll("queued", cache="max-age=30"), 5)
    record, findings = traffic.tracker.verified(plan, answer("running", at=traffic.now))
    assert (record.result, findings) == ("origin ahead", [])  # the origin may have moved on a moment ago
    later = traffic.poll(None, status=304, cache=None)  # ... but the client's copy still says queued
    assert "stale-status" in [f.code for f in later.findings]


def test_an_unanswered_check_is_a_failed_check_and_no_finding():
    traffic = started()
    plan = plan_check(traffic.poll("queued", cache="max-age=30"), 5)
    record, findings = traffic.tracker.verified(plan, OriginAnswer(sent_at=traffic.now, error="ConnectError: refused"))
    assert (record.result, record.detail, findings) == ("check failed", "ConnectError: refused", [])


def test_a_stale_date_is_blamed_on_a_cache_only_when_the_origins_own_date_is_fresh():
    for origin_clock_behind, expected in ((0, "stale-status"), (30, "origin ahead")):
        traffic = started()
        update = traffic.poll("queued", cache="no-cache", headers={"Date": formatdate(traffic.now - 30, usegmt=True)})
        plan = plan_check(update, 5)
        assert plan is not None and plan.reason is Reason.STALE_DATE
        record, _ = traffic.tracker.verified(plan, answer("running", at=traffic.now,
                                                          date=traffic.now - origin_clock_behind))
        assert record.result == expected  # a Date 30 s behind on both sides is the origin's clock
