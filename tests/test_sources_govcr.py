"""go-vcr cassettes, format 1 (`url`, `status: "200 OK"`, `code`, `duration`) and format 2 (adds `id`,
`proto`, `content_length`, ...). The Date header is the clock; `duration` spaces request and response."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pollwatch.errors import ReadError
from pollwatch.sources.govcr import go_duration
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
SEP_5 = datetime(2025, 9, 5, 15, 45, 52, tzinfo=UTC).timestamp()


def edited(tmp_path: Path, name: str, change) -> Path:
    document = yaml.safe_load((DATA / name).read_text())
    change(document)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_format_1_gives_method_url_status_headers_and_body():
    [create, started, finished] = read(DATA / "go-vcr-v1.yaml").observations
    assert (create.method, create.url, create.status) == ("POST", "https://api.example.test/v4/linode/instances", 200)
    assert create.request_headers["content-type"] == "application/json"
    assert create.response_headers["vary"] == "Authorization, X-Filter, Authorization, X-Filter"
    assert json.loads(started.body)["status"] == "started" and json.loads(finished.body)["status"] == "finished"


def test_format_1_without_dates_is_spaced_synthetically_and_durations_separate_request_from_response():
    recording = read(DATA / "go-vcr-v1.yaml")
    assert [(o.request_ts, o.response_ts) for o in recording.observations] == [(1.0, 1.0), (2.0, 3.5), (4.5, 4.75)]
    assert recording.synthetic_times is True


def test_format_2_gives_method_url_and_status():
    assert [(o.method, o.url.rsplit("/", 2)[-2:], o.status) for o in read(DATA / "go-vcr-v2.yaml").observations] == [
        ("POST", ["c033", "action"], 202), ("GET", ["images", "b1c1"], 200), ("GET", ["images", "b1c1"], 200)]


def test_format_2_dates_are_the_clock_and_durations_space_exchanges_within_a_second():
    recording = read(DATA / "go-vcr-v2.yaml")
    times = [(round(o.request_ts - SEP_5, 5), round(o.response_ts - SEP_5, 5)) for o in recording.observations]
    assert times == [(-0.37682, 0.0), (0.0, 0.15), (2.5, 5.0)]
    assert recording.synthetic_times is False


def test_the_status_text_counts_when_the_code_is_missing(tmp_path):
    path = edited(tmp_path, "go-vcr-v2.yaml", lambda d: d["interactions"][0]["response"].pop("code"))
    assert read(path).observations[0].status == 202


@pytest.mark.parametrize("text, seconds", [
    ("", 0.0), ("0s", 0.0), ("273.31643ms", 0.27331643), ("1.070261087s", 1.070261087), ("1h2m3.5s", 3723.5),
    ("1.5µs", 1.5e-6), (250_000_000, 0.25),
])
def test_durations_are_go_durations_or_nanoseconds(text, seconds):
    assert go_duration(text, "duration") == pytest.approx(seconds)


def test_a_duration_that_is_not_one_names_the_interaction(tmp_path):
    path = edited(tmp_path, "go-vcr-v2.yaml", lambda d: d["interactions"][1]["response"].update(duration="soon"))
    with pytest.raises(ReadError, match=r"edited\.yaml: interaction 1 is malformed \(response\.duration 'soon' is not"):
        read(path)


def test_a_response_given_as_text_names_the_interaction(tmp_path):
    path = edited(tmp_path, "go-vcr-v1.yaml", lambda d: d["interactions"][2].update(response="200 OK"))
    with pytest.raises(ReadError, match=r"interaction 2 is malformed \(response is a str, not a mapping\)"):
        read(path)


def test_a_truncated_cassette_names_the_line(tmp_path):
    path = tmp_path / "cut.yaml"
    text = (DATA / "go-vcr-v1.yaml").read_text()
    path.write_text(text[: text.index("provisioning")])
    with pytest.raises(ReadError, match=r"cut\.yaml: not a valid YAML cassette at line \d+"):
        read(path)
