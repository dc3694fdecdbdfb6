"""Betamax cassettes: JSON `http_interactions` with `recorded_with: betamax/...`, `recorded_at` in ISO
time, and bodies as they came off the wire, which are decompressed (never past the excerpt)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib
from datetime import UTC, datetime
from pathlib import Path

import brotli
import pytest
from pollwatch.core.observation import BODY_EXCERPT_LIMIT
from pollwatch.errors import ReadError
from pollwatch.mitm.decoding import COMPRESSED_BODY_LIMIT
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
RECORDED = datetime(2017, 3, 13, 10, 34, 19, tzinfo=UTC).timestamp()


@pytest.fixture
def cassette():
    return read(DATA / "betamax.json")


def specimen() -> dict:
    return json.loads((DATA / "betamax.json").read_text())


def with_body(tmp_path: Path, coding: str, raw: bytes) -> Path:
    """The specimen with its second response carrying `raw` as exact bytes and this Content-Encoding."""
    document = specimen()
    response = document["http_interactions"][1]["response"]
    response["headers"]["Content-Encoding"] = [coding]
    response["body"] = {"encoding": None, "base64_string": base64.b64encode(raw).decode()}
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


def test_interactions_give_method_url_status_and_headers(cassette):
    assert [(o.method, o.url, o.status) for o in cassette.observations] == [
        ("POST", "https://reports.example.test/exports", 202)] + [
        ("GET", "https://reports.example.test/exports/e-7", 200)] * 3
    assert cassette.observations[0].response_headers["location"] == "https://reports.example.test/exports/e-7"
    assert cassette.observations[0].request_headers["user-agent"] == "python-requests/2.31.0"


def test_recorded_at_is_the_clock_in_utc(cassette):
    assert [o.response_ts - RECORDED for o in cassette.observations] == [0.0, 2.0, 4.0, 6.0]
    assert cassette.synthetic_times is False


def test_a_plain_string_body_is_read(cassette):
    assert json.loads(cassette.observations[0].body)["export"]["state"] == "queued"


@pytest.mark.parametrize("index, coding", [(1, "gzip"), (2, "deflate"), (3, "br")])
def test_compressed_bodies_are_decompressed(cassette, index, coding):
    observation = cassette.observations[index]
    assert observation.response_headers["content-encoding"] == coding
    assert json.loads(observation.body)["export"]["id"] == "e-7"


def test_raw_deflate_without_the_zlib_header_is_decompressed(tmp_path):
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = packer.compress(b'{"state": "running"}') + packer.flush()
    assert read(with_body(tmp_path, "deflate", raw)).observations[1].body == b'{"state": "running"}'


def test_a_gzip_bomb_is_inflated_only_as_far_as_the_excerpt(tmp_path):
    observation = read(with_body(tmp_path, "gzip", gzip.compress(b"0" * 50_000_000))).observations[1]
    assert len(observation.body) == BODY_EXCERPT_LIMIT and observation.body_truncated


def test_a_brotli_body_is_cut_at_the_excerpt(tmp_path):
    observation = read(with_body(tmp_path, "br", brotli.compress(b"1" * (3 * BODY_EXCERPT_LIMIT)))).observations[1]
    assert len(observation.body) == BODY_EXCERPT_LIMIT and observation.body_truncated


def test_a_brotli_body_too_large_to_be_a_status_document_is_not_decoded(tmp_path):
    raw = brotli.compress(os.urandom(COMPRESSED_BODY_LIMIT + 1024), quality=1)
    observation = read(with_body(tmp_path, "br", raw)).observations[1]
    assert observation.body == b"" and observation.body_truncated


def test_a_body_that_does_not_decompress_is_kept_as_recorded(tmp_path):
    observation = read(with_body(tmp_path, "gzip", b'{"state": "running"}')).observations[1]
    assert observation.body == b'{"state": "running"}'


def test_old_cassettes_with_status_code_and_plain_header_values_are_read(tmp_path):
    document = specimen()
    response = document["http_interactions"][0]["response"]
    response["status_code"] = response.pop("status")["code"]
    response["headers"] = {"Content-Type": "application/json"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document))
    first = read(path).observations[0]
    assert first.status == 202 and first.response_headers == {"content-type": "application/json"}


def test_a_truncated_cassette_names_the_line(tmp_path):
    path = tmp_path / "cut.json"
    path.write_bytes((DATA / "betamax.json").read_bytes()[:900])
    with pytest.raises(ReadError, match=r"cut\.json: not a valid Betamax or Ruby VCR cassette: invalid JSON at line \d+"):
        read(path)


def test_a_body_that_is_not_base64_names_the_interaction(tmp_path):
    document = specimen()
    document["http_interactions"][2]["response"]["body"]["base64_string"] = "eJy"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ReadError, match=r"interaction 2 is malformed \(response\.body\.base64_string is not valid base64\)"):
        read(path)


def test_a_status_without_a_code_names_the_interaction(tmp_path):
    document = specimen()
    document["http_interactions"][3]["response"]["status"] = {"message": "OK"}
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ReadError, match=r"edited\.json: interaction 3 is malformed \(missing 'code'\)"):
        read(path)
