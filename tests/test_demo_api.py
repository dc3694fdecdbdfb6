"""The sample job API, its shared cache and the httpx pollers, against real sockets.

No proxy is involved: servers listen on 127.0.0.1, clients use trust_env=False, and
jobs run on a short Timing so the whole file stays fast.
"""

from __future__ import annotations

import dataclasses
import email.utils
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pollwatch.demo import (
    FAULTS,
    SCENARIOS,
    SampleAPI,
    SharedCache,
    Timing,
    poll_job,
    run_scenario,
)
from pollwatch.demo.clients import TERMINAL_STATES

FAST = Timing(queued_s=0.05, running_s=0.15)
DONE_AFTER = FAST.queued_s + FAST.running_s + 0.05

FINDING_CODES = {
    "status-cacheable",
    "status-from-shared-cache",
    "status-not-modified",
    "etag-reused-across-states",
    "state-regression",
    "stale-status",
    "response-reordered",
    "job-expired",
    "job-missing",
    "status-error",
    "unknown-job",
    "wrong-environment",
    "polling-abandoned",
    "poll-after-terminal",
    "poll-too-fast",
}


@pytest.fixture
def api() -> Iterator[SampleAPI]:
    with SampleAPI(timing=FAST) as server:
        yield server


@pytest.fixture
def staging() -> Iterator[SampleAPI]:
    with SampleAPI(name="staging", timing=FAST) as server:
        yield server


@pytest.fixture
def cache(api: SampleAPI) -> Iterator[SharedCache]:
    with SharedCache(api.url) as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=5) as http:
        yield http


def create(client: httpx.Client, base_url: str, path: str, query: str = "") -> httpx.Response:
    response = client.post(f"{base_url}{path}{'?' + query if query else ''}")
    assert response.status_code == 202
    return response


def create_export(client: httpx.Client, api: SampleAPI, query: str = "") -> str:
    """Create an export job and return its absolute status URL."""
    return f"{api.url}{create(client, api.url, '/api/exports', query).headers['Location']}"


# ------------------------------------------------------------------ contracts


def test_export_create_answers_202_with_relative_location_and_queued_body(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = create(client, api.url, "/api/exports")
    assert response.headers["Location"] == "/api/exports/e-1001"
    assert response.json() == {"id": "e-1001", "status": "queued"}


def test_export_job_goes_queued_running_succeeded_with_a_result_link(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api)
    assert client.get(status_url).json()["status"] == "queued"
    time.sleep(FAST.queued_s + 0.05)
    assert client.get(status_url).json()["status"] == "running"
    time.sleep(FAST.running_s)
    assert client.get(status_url).json() == {
        "id": "e-1001",
        "status": "succeeded",
        "result": "/api/exports/e-1001/download",
    }


def test_export_download_serves_csv_once_succeeded(api: SampleAPI, client: httpx.Client) -> None:
    status_url = create_export(client, api)
    assert client.get(f"{status_url}/download").status_code == 409
    time.sleep(DONE_AFTER)
    download = client.get(f"{status_url}/download")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    assert download.text.startswith("id,row\n")


def test_job_ids_count_up_per_server(api: SampleAPI, client: httpx.Client) -> None:
    first = create(client, api.url, "/api/exports").json()["id"]
    second = create(client, api.url, "/api/exports").json()["id"]
    assert (first, second) == ("e-1001", "e-1002")


def test_azure_create_answers_empty_202_with_absolute_operation_location(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = create(client, api.url, "/api/translations")
    assert response.content == b""
    assert response.headers["Operation-Location"] == (
        f"{api.url}/api/operations/op-1001?api-version=2024-05-01"
    )


def test_azure_operation_reports_pascal_case_words_until_succeeded(
    api: SampleAPI, client: httpx.Client
) -> None:
    operation_url = create(client, api.url, "/api/translations").headers["Operation-Location"]
    words = [client.get(operation_url).json()["status"]]
    time.sleep(FAST.queued_s + 0.05)
    words.append(client.get(operation_url).json()["status"])
    time.sleep(FAST.running_s)
    words.append(client.get(operation_url).json()["status"])
    assert words == ["NotStarted", "Running", "Succeeded"]


def test_monitor_create_answers_202_with_status_location_and_report_id(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = create(client, api.url, "/api/reports")
    assert response.headers["Location"] == "/api/reports/status/r-1001"
    assert response.json() == {"reportId": "r-1001"}


def test_monitor_status_answers_empty_202_with_retry_after_while_pending(
    api: SampleAPI, client: httpx.Client
) -> None:
    location = create(client, api.url, "/api/reports").headers["Location"]
    pending = client.get(f"{api.url}{location}")
    assert (pending.status_code, pending.headers["Retry-After"], pending.content) == (202, "1", b"")


def test_monitor_status_redirects_with_303_to_the_report_when_done(
    api: SampleAPI, client: httpx.Client
) -> None:
    location = create(client, api.url, "/api/reports").headers["Location"]
    time.sleep(DONE_AFTER)
    done = client.get(f"{api.url}{location}")
    assert (done.status_code, done.headers["Location"]) == (303, "/api/reports/r-1001")
    report = client.get(f"{api.url}/api/reports/r-1001")
    assert report.status_code == 200 and report.json()["reportId"] == "r-1001"


def test_monitor_with_end_200_answers_the_report_without_a_status_field(
    api: SampleAPI, client: httpx.Client
) -> None:
    location = create(client, api.url, "/api/reports", "end=200").headers["Location"]
    time.sleep(DONE_AFTER)
    done = client.get(f"{api.url}{location}")
    assert done.status_code == 200
    assert "status" not in done.json() and done.json()["reportId"] == "r-1001"


def test_google_operation_has_no_location_and_is_done_with_a_response(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = create(client, api.url, "/v1/operations")
    assert "Location" not in response.headers
    assert response.json() == {"name": "operations/g-1001", "done": False}
    time.sleep(DONE_AFTER)
    body = client.get(f"{api.url}/v1/operations/g-1001").json()
    assert body["done"] is True and body["response"]["rows"] == 3


def test_unknown_job_id_answers_404_json(api: SampleAPI, client: httpx.Client) -> None:
    response = client.get(f"{api.url}/api/exports/e-9999")
    assert (response.status_code, response.json()) == (404, {"error": "not found"})


def test_job_is_unknown_under_another_contracts_urls(api: SampleAPI, client: httpx.Client) -> None:
    create(client, api.url, "/api/exports")
    assert client.get(f"{api.url}/v1/operations/e-1001").status_code == 404


def test_unknown_fault_is_rejected_with_400(api: SampleAPI, client: httpx.Client) -> None:
    assert client.post(f"{api.url}/api/exports?fault=nope").status_code == 400


def test_status_responses_default_to_no_store_json_with_date_and_request_id(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = client.get(create_export(client, api))
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    assert "Date" in response.headers
    assert response.headers["X-Request-Id"] == "2"


def test_server_speaks_http_1_1_with_content_length(api: SampleAPI, client: httpx.Client) -> None:
    response = client.get(create_export(client, api))
    assert response.http_version == "HTTP/1.1"
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_page_creates_an_export_and_polls_its_status_with_fetch(
    api: SampleAPI, client: httpx.Client
) -> None:
    for path in ("/", "/ui/export"):
        page = client.get(f"{api.url}{path}?fault=etag-stuck")
        assert page.headers["Content-Type"].startswith("text/html")
        assert "fetch('/api/exports?fault=' +" in page.text
        assert 'id="state"' in page.text and 'id="polls"' in page.text


# --------------------------------------------------------------- server faults


def test_cached_status_fault_marks_status_responses_max_age_30(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = client.get(create_export(client, api, "fault=cached-status"))
    assert response.headers["Cache-Control"] == "max-age=30"


def test_cached_heuristic_fault_sends_an_old_last_modified_and_no_cache_control(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = client.get(create_export(client, api, "fault=cached-heuristic"))
    assert "Cache-Control" not in response.headers
    date = email.utils.parsedate_to_datetime(response.headers["Date"])
    last_modified = email.utils.parsedate_to_datetime(response.headers["Last-Modified"])
    assert (date - last_modified).total_seconds() >= 59


def test_shared_cache_fault_sends_public_s_maxage_from_ttl(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = client.get(create_export(client, api, "fault=shared-cache&ttl=5"))
    assert response.headers["Cache-Control"] == "public, s-maxage=5, max-age=0"


def test_etag_stuck_fault_sends_the_same_etag_in_every_state(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api, "fault=etag-stuck")
    queued = client.get(status_url)
    time.sleep(DONE_AFTER)
    succeeded = client.get(status_url)
    assert (queued.json()["status"], succeeded.json()["status"]) == ("queued", "succeeded")
    assert queued.headers["ETag"] == succeeded.headers["ETag"] == '"v1"'
    assert succeeded.headers["Cache-Control"] == "no-cache"


def test_etag_stuck_fault_answers_304_to_a_matching_if_none_match_after_the_job_ended(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api, "fault=etag-stuck")
    time.sleep(DONE_AFTER)
    response = client.get(status_url, headers={"If-None-Match": '"v1"'})
    assert (response.status_code, response.content, response.headers["ETag"]) == (304, b"", '"v1"')


def test_replica_lag_fault_alternates_primary_and_a_lagging_replica(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api, "fault=replica-lag&lag=0.3")
    time.sleep(DONE_AFTER)
    reads = [client.get(status_url) for _ in range(3)]
    assert [r.headers["X-Served-By"] for r in reads] == ["primary", "replica", "primary"]
    states = [r.json()["status"] for r in reads]
    assert states[0] == states[2] == "succeeded" and states[1] in ("queued", "running")


def test_slow_then_fast_fault_delivers_a_later_poll_before_the_held_second_answer(
    client: httpx.Client,
) -> None:
    with SampleAPI(timing=Timing(queued_s=0.05, running_s=2)) as api:
        status_url = create_export(client, api, "fault=slow-then-fast&delay=0.5")
        arrivals: list[tuple[str, str]] = []
        assert client.get(status_url).json()["status"] == "queued"

        def second_poll() -> None:
            arrivals.append(("second", client.get(status_url).json()["status"]))

        held = threading.Thread(target=second_poll)
        held.start()
        time.sleep(0.15)
        arrivals.append(("third", client.get(status_url).json()["status"]))
        held.join()
    assert arrivals == [("third", "running"), ("second", "queued")]


def test_expired_fault_answers_410_once_the_job_is_terminal(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api, "fault=expired")
    assert client.get(status_url).status_code == 200
    time.sleep(DONE_AFTER)
    gone = client.get(status_url)
    assert (gone.status_code, gone.json()) == (410, {"error": "expired"})


def test_missing_fault_answers_404_after_the_first_poll(api: SampleAPI, client: httpx.Client) -> None:
    status_url = create_export(client, api, "fault=missing")
    codes = [client.get(status_url).status_code for _ in range(3)]
    assert codes == [200, 404, 404]


@pytest.mark.parametrize(
    ("path", "status_path", "expected"),
    [
        ("/api/exports", "/api/exports/e-1001", {"status": "failed"}),
        ("/api/translations", "/api/operations/op-1001", {"status": "Failed"}),
        ("/api/reports", "/api/reports/status/r-1001", {"status": "failed"}),
        ("/v1/operations", "/v1/operations/g-1001", {"done": True}),
    ],
)
def test_failed_fault_ends_each_contract_in_its_failure_words(
    api: SampleAPI, client: httpx.Client, path: str, status_path: str, expected: dict[str, object]
) -> None:
    create(client, api.url, path, "fault=failed")
    time.sleep(DONE_AFTER)
    body = client.get(f"{api.url}{status_path}").json()
    assert expected.items() <= body.items()
    assert "error" in body


def test_flaky_5xx_fault_answers_503_with_retry_after_every_second_poll(
    api: SampleAPI, client: httpx.Client
) -> None:
    status_url = create_export(client, api, "fault=flaky-5xx")
    responses = [client.get(status_url) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 503, 200, 503]
    assert responses[1].headers["Retry-After"] == "1" and "error" in responses[1].json()


def test_too_fast_fault_adds_retry_after_to_status_responses(
    api: SampleAPI, client: httpx.Client
) -> None:
    response = client.get(create_export(client, api, "fault=too-fast"))
    assert response.headers["Retry-After"] == "1"


# ----------------------------------------------------------------- shared cache


def test_shared_cache_serves_hits_with_whole_seconds_of_age(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    location = create(client, cache.url, "/api/exports", "fault=shared-cache&ttl=2").headers["Location"]
    miss = client.get(f"{cache.url}{location}")
    time.sleep(1.05)
    hit = client.get(f"{cache.url}{location}")
    assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT")
    assert hit.headers["Age"] == "1" and "Age" not in miss.headers
    assert (hit.json(), hit.headers["Date"]) == (miss.json(), miss.headers["Date"])
    assert hit.json()["status"] == "queued"  # the job ended 0.8 s ago


def test_shared_cache_fetches_again_once_s_maxage_has_passed(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    location = create(client, cache.url, "/api/exports", "fault=shared-cache&ttl=1").headers["Location"]
    client.get(f"{cache.url}{location}")
    time.sleep(1.05)
    expired = client.get(f"{cache.url}{location}")
    assert (expired.headers["X-Cache"], expired.json()["status"]) == ("MISS", "succeeded")


def test_shared_cache_forwards_post_unchanged_with_relative_location(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    response = create(client, cache.url, "/api/exports")
    assert response.headers["Location"] == "/api/exports/e-1001"
    assert "X-Cache" not in response.headers


def test_shared_cache_never_stores_no_store_responses(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    location = create(client, cache.url, "/api/exports").headers["Location"]
    responses = [client.get(f"{cache.url}{location}") for _ in range(2)]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS", "MISS"]


def test_absolute_operation_location_through_the_cache_points_at_the_cache(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    response = create(client, cache.url, "/api/translations")
    assert response.headers["Operation-Location"].startswith(f"{cache.url}/api/operations/")


# ---------------------------------------------------------------------- clients


@pytest.mark.parametrize(
    ("path", "first_state"),
    [
        ("/api/exports", "queued"),
        ("/api/translations", "notstarted"),
        ("/api/reports", None),
        ("/v1/operations", "running"),
    ],
)
def test_poll_job_follows_each_contract_to_success(
    api: SampleAPI, client: httpx.Client, path: str, first_state: str | None
) -> None:
    outcome = poll_job(client, f"{api.url}{path}")
    assert outcome.final_state == "succeeded"
    assert outcome.seen[0][1] == first_state
    assert outcome.status_url.startswith(api.url)


def test_poll_job_fetches_the_result_once_after_success(api: SampleAPI, client: httpx.Client) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports")
    assert outcome.result_url == f"{api.url}/api/exports/e-1001/download"
    assert outcome.result_status == 200


def test_poll_job_ends_with_failed_for_a_failed_job(api: SampleAPI, client: httpx.Client) -> None:
    outcome = poll_job(client, f"{api.url}/api/translations?fault=failed")
    assert (outcome.final_state, outcome.seen[-1]) == ("failed", (200, "failed"))


def test_lost_id_client_polls_a_mangled_id_and_stops_on_404(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports", lost_id=True)
    assert outcome.status_url == f"{api.url}/api/exports/e-100x"
    assert (outcome.seen, outcome.final_state) == ([(404, None)], None)


def test_wrong_env_client_polls_the_prod_id_on_staging_and_stops_on_404(
    api: SampleAPI, staging: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/translations", wrong_env_url=staging.url)
    assert outcome.status_url.startswith(f"{staging.url}/api/operations/op-1001?api-version=")
    assert outcome.seen == [(404, None)]


def test_gives_up_client_stops_after_n_polls_before_the_end(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports", gives_up_after=2)
    assert outcome.polls == 2 and outcome.final_state is None


def test_ignores_terminal_client_polls_n_more_times_after_the_end(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports", extra_polls_after_terminal=3)
    assert outcome.states[-4:] == ["succeeded"] * 4


def test_client_honours_retry_after_by_default(api: SampleAPI, client: httpx.Client) -> None:
    started = time.monotonic()
    outcome = poll_job(client, f"{api.url}/api/exports?fault=too-fast")
    assert outcome.polls == 2 and time.monotonic() - started >= 1


def test_too_fast_client_ignores_retry_after(api: SampleAPI, client: httpx.Client) -> None:
    started = time.monotonic()
    outcome = poll_job(client, f"{api.url}/api/exports?fault=too-fast", honour_retry_after=False)
    assert outcome.polls > 2 and time.monotonic() - started < 1


def test_client_revalidates_with_etag_and_freezes_on_304_until_max_polls(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports?fault=etag-stuck", max_polls=5)
    assert outcome.seen == [(200, "queued")] + [(304, "queued")] * 4
    assert outcome.final_state is None


def test_client_retries_5xx_and_still_reaches_the_end(api: SampleAPI, client: httpx.Client) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports?fault=flaky-5xx")
    assert (503, None) in outcome.seen and outcome.final_state == "succeeded"


def test_client_stops_on_410_gone(api: SampleAPI, client: httpx.Client) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports?fault=expired")
    assert outcome.seen[-1] == (410, None) and outcome.final_state is None


def test_concurrent_client_receives_the_held_answer_after_newer_ones(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = poll_job(client, f"{api.url}/api/exports?fault=slow-then-fast&delay=0.5", concurrent=True)
    assert outcome.final_state == "succeeded"
    assert late_queued_after_newer_state(outcome.states)


def late_queued_after_newer_state(states: list[str]) -> bool:
    """True if a "queued" arrives after a running/terminal state was already delivered."""
    first_newer = next(i for i, state in enumerate(states) if state != "queued")
    return "queued" in states[first_newer:]


# -------------------------------------------------------------------- azure-core


def _azure_poller(api: SampleAPI, fault: str):  # type: ignore[no-untyped-def]
    from azure.core import PipelineClient
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.polling import LROPoller
    from azure.core.polling.base_polling import LROBasePolling
    from azure.core.rest import HttpRequest

    client: PipelineClient = PipelineClient(
        base_url=api.url, transport=RequestsTransport(use_env_settings=False)
    )
    request = HttpRequest("POST", f"{api.url}/api/translations?fault={fault}")
    initial = client.send_request(request, _return_pipeline_response=True)
    return LROPoller(
        client,
        initial,
        lambda pipeline_response: pipeline_response.http_response.json(),
        LROBasePolling(timeout=0.05),
    )


def test_azure_core_lro_poller_polls_the_azure_contract_to_succeeded(api: SampleAPI) -> None:
    poller = _azure_poller(api, "healthy")
    result = poller.result(timeout=10)
    assert poller.status() == "Succeeded"
    assert result == {"id": "op-1001", "status": "Succeeded"}


def test_azure_core_lro_poller_raises_for_a_failed_operation(api: SampleAPI) -> None:
    from azure.core.exceptions import HttpResponseError

    poller = _azure_poller(api, "failed")
    with pytest.raises(HttpResponseError):
        poller.result(timeout=10)
    assert poller.status() == "Failed"


# -------------------------------------------------------------------- scenarios


def test_every_server_fault_has_a_scenario() -> None:
    assert {s.fault for s in SCENARIOS.values()} == set(FAULTS)
    assert {"healthy-azure", "healthy-monitor", "healthy-google"} <= SCENARIOS.keys()
    assert {"lost-id", "wrong-env", "gives-up", "ignores-terminal", "too-fast"} <= SCENARIOS.keys()


def test_scenarios_expect_only_known_finding_codes_and_healthy_ones_expect_none() -> None:
    for scenario in SCENARIOS.values():
        assert set(scenario.expected_codes) <= FINDING_CODES, scenario.name
        if scenario.name.startswith("healthy"):
            assert scenario.expected_codes == ()


@pytest.mark.parametrize(
    ("name", "final_state"),
    [
        ("healthy", "succeeded"),
        ("healthy-azure", "succeeded"),
        ("healthy-google", "succeeded"),
        ("failed", "failed"),
        ("missing", None),
        ("lost-id", None),
        ("wrong-env", None),
    ],
)
def test_scenario_runs_against_real_servers_to_its_final_state(
    name: str,
    final_state: str | None,
    api: SampleAPI,
    staging: SampleAPI,
    cache: SharedCache,
    client: httpx.Client,
) -> None:
    outcome = run_scenario(SCENARIOS[name], api=api, staging=staging, cache=cache, client=client)
    assert outcome.polls > 0 and outcome.final_state == final_state


def test_gives_up_scenario_stops_polling_while_the_job_is_still_pending(
    client: httpx.Client,
) -> None:
    with SampleAPI() as api:  # default Timing: the job outlives the three polls
        outcome = run_scenario(SCENARIOS["gives-up"], api=api, client=client)
    assert outcome.polls == 3 and outcome.final_state is None
    assert not TERMINAL_STATES & set(outcome.states)


def test_replica_lag_scenario_delivers_succeeded_then_pending_then_succeeded(
    api: SampleAPI, client: httpx.Client
) -> None:
    outcome = run_scenario(SCENARIOS["replica-lag"], api=api, client=client)
    states = outcome.states
    first_end = states.index("succeeded")
    assert states[first_end + 1] not in TERMINAL_STATES
    assert "succeeded" in states[first_end + 2 :]


def test_shared_cache_scenario_sees_pending_from_the_cache_after_the_job_ended(
    api: SampleAPI, cache: SharedCache, client: httpx.Client
) -> None:
    scenario = dataclasses.replace(SCENARIOS["shared-cache"], params=(("ttl", "1"),))
    started = time.monotonic()
    outcome = run_scenario(scenario, api=api, cache=cache, client=client)
    assert outcome.status_url.startswith(cache.url)
    assert outcome.final_state == "succeeded"
    assert time.monotonic() - started >= 1 > DONE_AFTER  # pending answers outlived the job
    *cached, first_poller_end, checker = outcome.states
    assert set(cached) == {"queued"} and first_poller_end == checker == "succeeded"


def test_shared_cache_is_bypassed_by_a_no_cache_request(api: SampleAPI, cache: SharedCache, client: httpx.Client) -> None:
    status_url = cache.url + client.post(f"{cache.url}/api/exports?fault=shared-cache&ttl=5").headers["Location"]
    assert client.get(status_url).headers["X-Cache"] == "MISS"
    assert client.get(status_url).headers["X-Cache"] == "HIT"
    assert client.get(status_url, headers={"Cache-Control": "no-cache"}).headers["X-Cache"] == "BYPASS"


def test_etag_stuck_scenario_freezes_then_a_fresh_poller_sees_the_finished_job(
    api: SampleAPI, client: httpx.Client
) -> None:
    scenario = SCENARIOS["etag-stuck"]
    shorter = dataclasses.replace(scenario, client=dataclasses.replace(scenario.client, max_polls=5))
    outcome = run_scenario(shorter, api=api, client=client)
    assert outcome.seen == [(200, "queued")] + [(304, "queued")] * 4 + [(200, "succeeded")]


def test_slow_then_fast_scenario_receives_an_older_state_after_a_newer_one(
    api: SampleAPI, client: httpx.Client
) -> None:
    scenario = dataclasses.replace(SCENARIOS["slow-then-fast"], params=(("delay", "0.4"),))
    outcome = run_scenario(scenario, api=api, client=client)
    assert late_queued_after_newer_state(outcome.states)


def test_scenario_that_needs_a_cache_refuses_to_run_without_one(
    api: SampleAPI, client: httpx.Client
) -> None:
    with pytest.raises(ValueError):
        run_scenario(SCENARIOS["shared-cache"], api=api, client=client)
