"""VCR.py cassettes in both layouts: today's (`status: {code, message}`, `body: {string}`) and the
older httpx one (`status_code`, `content`). They record no times: the Date header is the clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pollwatch.errors import ReadError
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
NOV_16 = datetime(2023, 11, 16, 11, 46, 16, tzinfo=UTC).timestamp()


def edited(tmp_path: Path, name: str, change) -> Path:
    document = yaml.safe_load((DATA / name).read_text())
    change(document)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_todays_layout_gives_method_url_status_and_headers():
    [create, poll] = read(DATA / "vcrpy.yaml").observations
    assert (create.method, create.url, create.status) == (
        "PUT", "https://management.example.test/ipAddresses/ip-1?api-version=2019-12-01", 201)
    assert create.response_headers["azure-asyncoperation"].startswith("https://management.example.test/operations/op-1")
    assert create.request_headers == {"accept": "application/json"} and poll.status == 200


def test_a_binary_gzip_body_is_decompressed():
    poll = read(DATA / "vcrpy.yaml").observations[1]
    assert json.loads(poll.body) == {"status": "Succeeded"}


def test_the_httpx_layout_gives_status_code_and_content():
    [create, poll] = read(DATA / "vcrpy-httpx.yaml").observations
    assert (create.method, create.url, create.status) == ("POST", "https://api.example.test/v1/predictions", 201)
    assert json.loads(create.body)["urls"]["get"] == "https://api.example.test/v1/predictions/azaq55"
    assert poll.status == 200


def test_httpx_content_already_decoded_is_kept_though_the_header_says_gzip():
    poll = read(DATA / "vcrpy-httpx.yaml").observations[1]
    assert poll.response_headers["content-encoding"] == "gzip"
    assert json.loads(poll.body) == {"id": "azaq55", "status": "succeeded"}


def test_exchanges_within_one_date_second_keep_their_order():
    recording = read(DATA / "vcrpy-httpx.yaml")
    assert [o.response_ts - NOV_16 for o in recording.observations] == [0.0, pytest.approx(0.001, abs=1e-6)]
    assert recording.synthetic_times is False


def test_without_date_headers_exchanges_are_spaced_a_second_apart_and_flagged(tmp_path):
    def drop_dates(document):
        for interaction in document["interactions"]:
            interaction["response"]["headers"].pop("Date")
    recording = read(edited(tmp_path, "vcrpy-httpx.yaml", drop_dates))
    assert [(o.request_ts, o.response_ts) for o in recording.observations] == [(1.0, 1.0), (2.0, 2.0)]
    assert recording.synthetic_times is True


def test_a_truncated_cassette_names_the_line(tmp_path):
    path = tmp_path / "cut.yaml"
    text = (DATA / "vcrpy-httpx.yaml").read_text()
    path.write_text(text[: text.index("starting") + 3])
    with pytest.raises(ReadError, match=r"cut\.yaml: not a valid YAML cassette at line \d+"):
        read(path)


def test_a_status_code_that_is_no_number_names_the_interaction(tmp_path):
    path = edited(tmp_path, "vcrpy-httpx.yaml", lambda d: d["interactions"][1]["response"].update(status_code="ok"))
    with pytest.raises(ReadError, match=r"edited\.yaml: interaction 1 is malformed \(response\.status_code 'ok' is not"):
        read(path)


def test_a_request_given_as_a_list_names_the_interaction(tmp_path):
    path = edited(tmp_path, "vcrpy.yaml", lambda d: d["interactions"][0].update(request=["GET", "https://x"]))
    with pytest.raises(ReadError, match=r"interaction 0 is malformed \(request is a list, not a mapping\)"):
        read(path)


def test_a_missing_uri_names_the_interaction(tmp_path):
    path = edited(tmp_path, "vcrpy.yaml", lambda d: d["interactions"][1]["request"].pop("uri"))
    with pytest.raises(ReadError, match=r"interaction 1 is malformed \(missing 'uri'\)"):
        read(path)


def test_bytes_that_are_not_text_name_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((DATA / "vcrpy.yaml").read_bytes().replace(b"westus", b"w\xe9stus"))
    with pytest.raises(ReadError, match=r"latin1\.yaml: not a valid YAML cassette at byte \d+ \(invalid"):
        read(path)
