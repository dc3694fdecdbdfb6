"""Recognising jobs: where the job reference comes from, and how URLs are compared."""

import pytest

from pollwatch.core.references import Template, find_reference, is_job_creation
from pollwatch.core.urls import url_key
from pollwatch.core.observation import Headers, Observation

CREATE = "https://api.test/v1/reports"


def ref(headers=None, body=None):
    return find_reference(CREATE, Headers.of(headers or {}), body)


def answer(method: str, status: int, headers: dict[str, str] | None = None) -> Observation:
    return Observation.make(flow_id="f1", method=method, url=CREATE, status=status, response_headers=headers or {},
                            request_headers={}, body=b"", request_ts=1.0, response_ts=1.1)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "GET"])
def test_202_creates_a_job_whatever_the_method(method):
    assert is_job_creation(answer(method, 202))


@pytest.mark.parametrize("header", ["Operation-Location", "Azure-AsyncOperation"])
def test_201_with_an_async_operation_header_creates_a_job(header):
    assert is_job_creation(answer("PUT", 201, {header: "https://x/op/1"}))


def test_plain_201_with_location_does_not_create_a_job():
    assert not is_job_creation(answer("POST", 201, {"Location": "/things/1"}))


def test_a_configured_status_header_makes_a_200_a_creation():
    assert not is_job_creation(answer("POST", 200, {"X-Task-Url": "/tasks/7"}))
    assert is_job_creation(answer("POST", 200, {"X-Task-Url": "/tasks/7"}), ["x-task-url"])


def test_the_headers_of_a_response_that_is_not_2xx_are_never_decoded():
    obs = answer("GET", 404).with_body_loader(lambda obs: (b"", False))
    obs._response_headers = lambda: pytest.fail("headers decoded")  # type: ignore[assignment]
    assert not is_job_creation(obs)


def test_header_order_prefers_operation_location_over_location():
    r = ref({"Location": "/v1/other/9", "Operation-Location": "https://api.test/v1/ops/op-7?api-version=2"})
    assert r.source == "operation-location" and r.job_id == "op-7"


def test_relative_location_is_resolved_against_the_request_url():
    assert ref({"Location": "status/r-1001"}).status_url == "https://api.test/v1/status/r-1001"


def test_url_only_job_id_is_the_last_path_segment():
    assert ref({"Location": "/v1/reports/status/r-1001"}).job_id == "r-1001"


def test_generic_trailing_segment_is_skipped_for_the_id():
    assert ref({"Location": "/v1/reports/r-1001/status"}).job_id == "r-1001"


def test_body_field_found_in_the_status_url_confirms_the_id():
    r = ref({"Location": "/v1/reports/r-1001/progress"}, {"reportId": "r-1001"})
    assert r.job_id == "r-1001"


@pytest.mark.parametrize("field", ["id", "jobId", "job_id", "operationId", "operation_id"])
def test_body_id_fields_name_the_job_without_a_header(field):
    r = ref(body={field: "j-42"})
    assert (r.job_id, r.status_url, r.source) == ("j-42", None, "body")


def test_google_operation_name_gives_the_id():
    assert ref(body={"name": "operations/abc-123", "done": False}).job_id == "abc-123"


def test_a_plain_name_field_is_not_a_job_id():
    assert ref(body={"name": "quarterly report"}).job_id is None


@pytest.mark.parametrize("body, url", [
    ({"href": "/v1/jobs/j-1"}, "https://api.test/v1/jobs/j-1"),
    ({"statusUrl": "https://api.test/s/j-1"}, "https://api.test/s/j-1"),
    ({"links": {"status": "/l/j-1"}}, "https://api.test/l/j-1"),
    ({"_links": {"self": {"href": "/h/j-1"}}}, "https://api.test/h/j-1"),
])
def test_body_links_give_the_status_url(body, url):
    assert ref(body=body).status_url == url


def test_extra_id_fields_and_headers_are_honoured():
    r = find_reference(CREATE, Headers.of({"X-Job-Monitor": "/m/77"}), {"ticket": "t-1"},
                       extra_headers=["X-Job-Monitor"], extra_id_fields=["ticket"])
    assert r.status_url == "https://api.test/m/77" and "t-1" in r.aliases


def test_nothing_to_poll_gives_no_reference():
    assert ref(body={"message": "accepted"}).job_id is None


def test_url_comparison_ignores_query_order_and_default_ports():
    assert url_key("https://API.test:443/a/b?x=1&y=2") == url_key("https://api.test/a/b?y=2&x=1")


def test_url_comparison_sees_a_different_port():
    assert url_key("http://api.test:8080/a") != url_key("http://api.test:8081/a")


def test_template_matches_same_shape_and_returns_the_id():
    assert Template.parse("/v1/reports/status/{id}").match("http://h/v1/reports/status/r-9") == "r-9"


def test_template_rejects_other_shapes():
    assert Template.parse("/v1/reports/status/{id}").match("http://h/v1/reports/r-9") is None


def test_template_without_id_is_an_error():
    with pytest.raises(ValueError):
        Template.parse("/v1/reports/status")
