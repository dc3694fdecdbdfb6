"""Ruby VCR cassettes: `http_interactions`, lower-case methods, headers as lists, bodies as `string`,
`base64_string` or Psych's `!binary`, and `recorded_at` as the clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pollwatch.errors import ReadError
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
RECORDED = datetime(2016, 7, 5, 14, 44, 18, tzinfo=UTC).timestamp()


@pytest.fixture
def cassette():
    return read(DATA / "ruby-vcr.yml")


def edited(tmp_path: Path, change) -> Path:
    text = (DATA / "ruby-vcr.yml").read_text().replace("!binary", "!!binary")  # PyYAML writes the standard tag
    document = yaml.safe_load(text)
    change(document)
    path = tmp_path / "edited.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_lower_case_methods_are_upper_cased_and_uri_is_the_url(cassette):
    assert [(o.method, o.url, o.status) for o in cassette.observations] == [
        ("POST", "https://volume.example.test/v2/p-1/volumes", 202),
        ("GET", "https://volume.example.test/v2/p-1/volumes/4462fc17", 200),
        ("DELETE", "https://volume.example.test/v2/p-1/volumes/4462fc17", 404),
    ]


def test_headers_given_as_lists_are_joined(cassette):
    create = cassette.observations[0]
    assert create.response_headers["via"] == "1.1 proxy-a, 1.1 proxy-b"
    assert create.request_headers["user-agent"] == "fog-core/2.1.0"


def test_a_string_body_is_read(cassette):
    assert json.loads(cassette.observations[0].body) == {"volume": {"id": "4462fc17", "status": "creating"}}


def test_a_base64_string_body_is_decoded(cassette):
    assert json.loads(cassette.observations[1].body)["volume"]["status"] == "available"


def test_a_binary_gzip_body_is_decompressed(cassette):
    assert json.loads(cassette.observations[2].body)["itemNotFound"]["code"] == 404


def test_recorded_at_is_the_clock_not_the_date_header(cassette):
    assert [o.response_ts - RECORDED for o in cassette.observations] == [0.0, pytest.approx(0.001, abs=1e-6), 7.0]
    assert cassette.synthetic_times is False


def test_without_recorded_at_the_date_header_is_the_clock(tmp_path):
    def forget(document):
        for interaction in document["http_interactions"]:
            del interaction["recorded_at"]
    recording = read(edited(tmp_path, forget))
    assert recording.observations[0].response_ts == RECORDED - 1
    assert recording.synthetic_times is True  # the last interaction has neither


def test_a_json_serialized_cassette_reads_the_same(tmp_path, cassette):
    document = yaml.safe_load((DATA / "ruby-vcr.yml").read_text().replace("!binary", "!!binary"))
    document["http_interactions"].pop()  # bytes have no JSON form
    path = tmp_path / "cassette.json"
    path.write_text(json.dumps(document))
    assert [o.as_dict() for o in read(path).observations] == [o.as_dict() for o in cassette.observations[:2]]


def test_a_truncated_cassette_names_the_line(tmp_path):
    path = tmp_path / "cut.yml"
    text = (DATA / "ruby-vcr.yml").read_text()
    path.write_text(text[: text.index('"creating"')])
    with pytest.raises(ReadError, match=r"cut\.yml: not a valid YAML cassette at line 3\d"):
        read(path)


def test_a_response_without_status_names_the_interaction(tmp_path):
    path = edited(tmp_path, lambda d: d["http_interactions"][1]["response"].pop("status"))
    with pytest.raises(ReadError, match=r"edited\.yml: interaction 1 is malformed \(missing 'status'\)"):
        read(path)


def test_headers_given_as_a_list_name_the_interaction(tmp_path):
    path = edited(tmp_path, lambda d: d["http_interactions"][0]["response"].update(headers=["Date", "today"]))
    with pytest.raises(ReadError, match=r"interaction 0 is malformed \(response\.headers is a list, not a mapping\)"):
        read(path)


def test_an_unreadable_recorded_at_names_the_interaction(tmp_path):
    path = edited(tmp_path, lambda d: d["http_interactions"][2].update(recorded_at="yesterday"))
    with pytest.raises(ReadError, match=r"interaction 2 is malformed \(recorded_at 'yesterday' is not a date\)"):
        read(path)


def test_http_interactions_that_are_not_a_list_are_an_error(tmp_path):
    path = tmp_path / "odd.yml"
    path.write_text("http_interactions:\n  first: {}\nrecorded_with: VCR 6.1.0\n")
    with pytest.raises(ReadError, match=r"odd\.yml: not a Ruby VCR cassette \(http_interactions is a dict"):
        read(path)
