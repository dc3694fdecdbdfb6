"""`pollwatch variants` on recordings off the happy path: a job done at its first poll, a body
with `"error": null`, credentials in the recording, and `pollwatch regress` next to earlier output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import RECORDINGS
from mitmproxy import http, io
from pollwatch.cli.app import main
from pollwatch.testing import variants as variants_module
from pollwatch.testing.cases import CASES
from pollwatch.testing.variants import REDACTED, derive

HEALTHY = RECORDINGS / "healthy.flows"


def read(path: Path) -> list[http.HTTPFlow]:
    with path.open("rb") as f:
        return [x for x in io.FlowReader(f).stream() if isinstance(x, http.HTTPFlow)]


def recording(tmp_path: Path, edit: Callable[[list[http.HTTPFlow]], list[http.HTTPFlow]]) -> Path:
    """recordings/healthy.flows (create, 11 status polls, a download) edited by `edit`."""
    path = tmp_path / "edited.flows"
    with path.open("wb") as f:
        writer = io.FlowWriter(f)
        for flow in edit(read(HEALTHY)):
            writer.add(flow)
    return path


def test_a_job_done_at_its_first_poll_gets_no_slow_variant_but_a_note(tmp_path):
    source = recording(tmp_path, lambda fl: [fl[0], fl[11], fl[12]])
    written, skipped = derive(str(source), tmp_path / "out")
    assert "slow" not in {v.name for v in written} and {"cached", "failed"} <= {v.name for v in written}
    assert any(s.startswith("slow: ") for s in skipped)


def test_a_case_that_breaks_is_noted_in_one_line_and_the_others_are_still_written(tmp_path, monkeypatch):
    def broken(job):
        raise ValueError("no such header")

    monkeypatch.setitem(variants_module.BUILDERS, "cached", broken)
    written, skipped = derive(str(HEALTHY), tmp_path)
    assert [v.name for v in written] == [n for n in CASES if n != "cached"]
    assert skipped == ["cached: could not be derived (ValueError: no such header)"]


def last_answer(path: Path) -> http.Response:
    return [f for f in read(path) if f.request.pretty_url.endswith("/e-1001")][-1].response


def test_the_failed_variant_sets_an_error_where_the_recording_says_error_null(tmp_path):
    def error_null(flows):
        for flow in flows[:12]:
            flow.response.text = json.dumps(json.loads(flow.response.text) | {"error": None})
        return flows

    derive(str(recording(tmp_path, error_null)), tmp_path / "out", ["failed"])
    assert json.loads(last_answer(tmp_path / "out" / "failed.flows").text)["error"] == {
        "code": "JobFailed", "message": "the job failed"}


@pytest.mark.parametrize("name", ["failed", "expired"])
def test_a_variant_that_changes_the_terminal_body_does_not_keep_the_recorded_etag(tmp_path, name):
    def tagged(flows):
        for n, flow in enumerate(flows):
            flow.response.headers["ETag"] = f'"v{n}"'
        return flows

    derive(str(recording(tmp_path, tagged)), tmp_path / "out", [name])
    assert last_answer(tmp_path / "out" / f"{name}.flows").headers.get("ETag") != '"v11"'


def with_credentials(flows):
    for flow in flows:
        flow.request.headers["Authorization"] = "Bearer SECRET-TOKEN"
        flow.request.headers["Cookie"] = "session=SECRET"
        flow.response.headers["Set-Cookie"] = "session=SECRET; HttpOnly"
    return flows


def test_variants_replace_credentials_of_the_recording_with_a_placeholder(tmp_path):
    derive(str(recording(tmp_path, with_credentials)), tmp_path / "out", ["cached"])
    assert b"SECRET" not in (tmp_path / "out" / "cached.flows").read_bytes()
    assert {f.request.headers["Authorization"] for f in read(tmp_path / "out" / "cached.flows")} == {REDACTED}


def test_keep_credentials_writes_them_as_recorded(tmp_path):
    result = CliRunner().invoke(main, ["variants", str(recording(tmp_path, with_credentials)), "-o",
                                       str(tmp_path / "out"), "--case", "cached", "--keep-credentials"])
    assert result.exit_code == 0, result.output
    assert {f.request.headers["Cookie"] for f in read(tmp_path / "out" / "cached.flows")} == {"session=SECRET"}


def test_regress_does_not_overwrite_an_existing_variants_folder_without_force(tmp_path):
    (tmp_path / "test_contract_variants").mkdir()
    (tmp_path / "test_contract_variants" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(main, ["regress", str(HEALTHY), "-o", str(tmp_path / "test_contract.py")])
    assert result.exit_code == 1 and "test_contract_variants exists; pass --force" in result.output
    assert sorted(p.name for p in (tmp_path / "test_contract_variants").iterdir()) == ["mine.txt"]


def test_regress_says_in_one_line_when_the_variants_folder_is_a_file(tmp_path):
    (tmp_path / "test_contract_variants").write_text("")
    result = CliRunner().invoke(main, ["regress", str(HEALTHY), "-o", str(tmp_path / "test_contract.py"), "--force"])
    assert result.exit_code == 1 and "is a file" in result.output and "Traceback" not in result.output


def with_signed_status_urls(flows):
    for flow in flows[1:12]:  # the status polls
        flow.request.query["sig"] = "SIGNEDsecretVALUE"
    return flows


def test_the_variants_description_keeps_no_signed_url_secret_and_still_serves_its_status(tmp_path):
    derive(str(recording(tmp_path, with_signed_status_urls)), tmp_path / "out", ["slow"])
    assert "SIGNEDsecretVALUE" not in (tmp_path / "out" / "slow.json").read_text()
    served = variants_module.serving_file(tmp_path / "out", "slow", tmp_path / "served.flows", spare=3)
    assert len(read(tmp_path / "served.flows")) == len(read(tmp_path / "out" / "slow.flows")) + 3
    assert "sig=REDACTED" in served.status_url


def test_a_job_can_be_named_by_the_fingerprint_pollwatch_shows_for_it(tmp_path):
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqb2ItNDIifQ.c2lnbmF0dXJlLXBhcnQ"

    def jwt_job(flows):
        for flow in flows:
            for part in (flow.request, flow.response):
                part.content = part.content.replace(b"e-1001", jwt.encode())
            flow.request.path = flow.request.path.replace("e-1001", jwt)
            if "Location" in flow.response.headers:
                flow.response.headers["Location"] = flow.response.headers["Location"].replace("e-1001", jwt)
        return flows

    from pollwatch.core.redact import fingerprint
    written, _ = derive(f"{recording(tmp_path, jwt_job)}:{fingerprint(jwt)}", tmp_path / "out", ["cached"])
    assert [v.job_id for v in written] == [fingerprint(jwt)]
    assert jwt not in (tmp_path / "out" / "cached.json").read_text()
