"""HAR files, including Polly.js recordings (HAR 1.2 with `_id`, `_order`, binary bodies in base64 or
hex, content-encoded responses as a list of chunks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pollwatch.errors import ReadError
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
STARTED = datetime(2024, 2, 1, 9, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def polly():
    return read(DATA / "polly.har")


def write(tmp_path: Path, document: dict, name: str = "edited.har") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def specimen() -> dict:
    return json.loads((DATA / "polly.har").read_text())


def test_polly_entries_give_method_url_and_status_in_recorded_order(polly):
    assert [(o.method, o.url, o.status) for o in polly.observations] == [
        ("POST", "https://jobs.example.test/v1/jobs", 202),
        ("GET", "https://jobs.example.test/v1/jobs/j-1", 200),
        ("GET", "https://jobs.example.test/v1/jobs/j-1", 200),
        ("GET", "https://jobs.example.test/v1/jobs/j-1/result", 200),
    ]


def test_polly_headers_are_read_and_its_underscore_fields_ignored(polly):
    create = polly.observations[0]
    assert create.request_headers == {"content-type": "application/json", "accept": "application/json"}
    assert create.response_headers["location"] == "/v1/jobs/j-1" and create.response_headers["retry-after"] == "1"


def test_each_entry_keeps_its_start_time_and_duration(polly):
    times = [(o.request_ts - STARTED, round(o.response_ts - STARTED, 4)) for o in polly.observations]
    assert times == [(0.0, 0.035), (1.0, 1.02), (2.5, 2.5185), (3.0, 3.012)]
    assert polly.synthetic_times is False


def test_a_repeated_polly_request_gets_one_flow_id_per_repetition(polly):
    ids = [o.flow_id for o in polly.observations]
    assert ids[1] == "9f8e7d6c5b4a39281706f5e4d3c2b1a0#0" and ids[2] == "9f8e7d6c5b4a39281706f5e4d3c2b1a0#1"
    assert len(set(ids)) == len(ids)


def test_a_text_body_is_read_as_it_is(polly):
    assert json.loads(polly.observations[0].body) == {"id": "j-1", "status": "queued"}


def test_a_hex_body_of_polly_before_version_6_is_decoded(polly):
    assert json.loads(polly.observations[1].body)["status"] == "running"


def test_a_base64_body_is_decoded(polly):
    assert json.loads(polly.observations[2].body)["status"] == "succeeded"


def test_content_encoded_chunks_are_joined_and_decompressed(polly):
    assert json.loads(polly.observations[3].body) == {"id": "j-1", "result": "s3://bucket/j-1.csv"}


def test_a_failed_request_recorded_with_status_0_has_no_status(tmp_path):
    document = specimen()
    document["log"]["entries"][1]["response"]["status"] = 0
    assert read(write(tmp_path, document)).observations[1].status is None


def test_a_truncated_har_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "cut.har"
    path.write_bytes((DATA / "polly.har").read_bytes()[:1500])
    with pytest.raises(ReadError, match=r"cut\.har: not a HAR file: invalid JSON at line \d+ column \d+"):
        read(path)


def test_headers_that_are_not_a_list_name_the_entry(tmp_path):
    document = specimen()
    document["log"]["entries"][2]["request"]["headers"] = {"accept": "application/json"}
    with pytest.raises(ReadError, match=r"edited\.har: HAR entry 2 is malformed \(request\.headers is a dict, not a list\)"):
        read(write(tmp_path, document))


def test_an_entry_without_a_start_time_names_the_entry(tmp_path):
    document = specimen()
    del document["log"]["entries"][1]["startedDateTime"]
    with pytest.raises(ReadError, match=r"HAR entry 1 is malformed \(missing 'startedDateTime'\)"):
        read(write(tmp_path, document))


def test_a_body_that_is_not_base64_names_the_entry(tmp_path):
    document = specimen()
    document["log"]["entries"][2]["response"]["content"]["text"] = "not base64!"
    with pytest.raises(ReadError, match=r"HAR entry 2 is malformed \(response\.content\.text is not valid base64\)"):
        read(write(tmp_path, document))


def test_entries_that_are_not_a_list_are_an_error(tmp_path):
    with pytest.raises(ReadError, match=r"edited\.har: not a HAR file \(no log\.entries list\)"):
        read(write(tmp_path, {"log": {"entries": {"0": {}}}}))


@pytest.mark.parametrize("field, value", [("time", float("nan")), ("time", float("inf")), ("time", 1e300),
                                          ("startedDateTime", 1e300), ("startedDateTime", -5)])
def test_impossible_times_are_refused_in_one_line(tmp_path, field, value):
    document = specimen()
    document["log"]["entries"][1][field] = value
    with pytest.raises(ReadError) as caught:
        read(write(tmp_path, document))
    assert "entry 1" in str(caught.value) and "\n" not in str(caught.value)
