"""Recordings are recognised by what is in them, never by their names; what is not a recording
pollwatch knows is one line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pollwatch.errors import ReadError
from pollwatch.sources.readers import expand, read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"

SPECIMENS = {
    "polly.har": "har",
    "betamax.json": "betamax",
    "ruby-vcr.yml": "ruby-vcr",
    "go-vcr-v1.yaml": "go-vcr",
    "go-vcr-v2.yaml": "go-vcr",
    "vcrpy.yaml": "cassette",
    "vcrpy-httpx.yaml": "cassette",
}


@pytest.mark.parametrize("name, kind", sorted(SPECIMENS.items()))
def test_the_format_is_told_by_content_whatever_the_file_is_called(tmp_path, name, kind):
    renamed = tmp_path / "recording.txt"
    shutil.copy(DATA / name, renamed)
    assert read(renamed).kind == kind


def test_a_mitmproxy_flow_file_is_told_by_its_first_bytes(tmp_path):
    renamed = tmp_path / "capture.yaml"
    shutil.copy(RECORDINGS / "healthy.flows", renamed)
    assert read(renamed).kind == "flows"


def test_ruby_vcr_written_as_json_is_told_from_betamax_by_its_recorder(tmp_path):
    path = tmp_path / "cassette.json"
    path.write_text('{"http_interactions": [], "recorded_with": "VCR 6.1.0"}')
    assert read(path).kind == "ruby-vcr"


def test_a_vcrpy_cassette_serialized_as_json_is_read(tmp_path):
    path = tmp_path / "cassette.json"
    path.write_text('{"version": 1, "interactions": [{"request": {"method": "GET", "uri": "https://a.test/x",'
                    ' "headers": {}, "body": null}, "response": {"status": {"code": 204, "message": ""},'
                    ' "headers": {}, "body": {"string": ""}}}]}')
    recording = read(path)
    assert recording.kind == "cassette" and [o.status for o in recording.observations] == [204]


def test_a_har_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "windows.har"
    path.write_bytes(b"\xef\xbb\xbf" + (DATA / "polly.har").read_bytes())
    assert len(read(path).observations) == 4


def test_an_empty_file_is_an_empty_recording(tmp_path):
    path = tmp_path / "empty.flows"
    path.write_bytes(b"")
    assert read(path).observations == []


@pytest.mark.parametrize("content", [
    b"just some notes\n",
    b"name: not a cassette\nitems: [1, 2]\n",
    b"- a list\n- of things\n",
    bytes(range(256)),
])
def test_an_unknown_format_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / "mystery.dat"
    path.write_bytes(content)
    with pytest.raises(ReadError, match=r"^.*mystery\.dat: unknown format") as caught:
        read(path)
    assert "\n" not in str(caught.value)


def test_json_that_is_no_recording_says_it_is_not_a_har_file(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"headers": "not a list"}')
    with pytest.raises(ReadError, match=r"rules\.json: unknown format: not a HAR file"):
        read(path)


def test_a_folder_yields_recordings_and_passes_over_other_files(tmp_path):
    for name in ("betamax.json", "ruby-vcr.yml", "polly.har"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "expected.json").write_text('{"replicate.yaml": [{"create": "POST /v1/predictions"}]}')
    (tmp_path / "package.json").write_text('{"name": "app", "version": "1.0.0"}')
    (tmp_path / "README.md").write_text("notes")
    assert [p.name for p in expand([tmp_path])] == ["betamax.json", "polly.har", "ruby-vcr.yml"]


def test_a_named_file_is_read_whatever_its_suffix(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    assert expand([path]) == [path]
