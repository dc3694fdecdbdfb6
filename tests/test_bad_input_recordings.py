"""HAR files and cassettes that `analyze` reads are read by `sanitize` and `scan` too, or refused
in one line naming the file and the entry: never a traceback (issue 16). Field types the
analysis takes as text (a number for a body, a header value or a key) are taken alike; a URL no
flow can carry (no host, a broken IPv6 address) is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"


def har_with(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The Polly.js fixture HAR with its first entry changed."""
    document = json.loads((DATA / "polly.har").read_text(encoding="utf-8"))
    change(document["log"]["entries"][0])
    path = tmp_path / "changed.har"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def cassette_with(tmp_path: Path, old: str, new: str) -> Path:
    """The VCR.py fixture cassette with the first `old` replaced by `new`."""
    text = (DATA / "vcrpy.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "changed.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def run(*args: str | Path):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


READ_ALIKE = {
    "a body that is a number": lambda tmp: har_with(tmp, lambda e: e["response"]["content"].update(text=5)),
    "a header value that is a number": lambda tmp: har_with(
        tmp, lambda e: e["request"]["headers"].append({"name": "x-retry", "value": 3})),
    "postData that is text": lambda tmp: har_with(tmp, lambda e: e["request"].update(postData="rows=10000")),
    "a cassette body that is plain text": lambda tmp: cassette_with(
        tmp, "body:\n      string: '{\"name\"", "body: '{\"name\""),
    "a key that is a number": lambda tmp: cassette_with(tmp, "interactions:\n- request:",
                                                        "interactions:\n- 7: seven\n  request:"),
}


@pytest.mark.parametrize("case", READ_ALIKE)
def test_sanitize_reads_what_analyze_reads(tmp_path, case):
    source = READ_ALIKE[case](tmp_path)
    assert read(source).observations
    out = tmp_path / "copy.flows"
    result = run("sanitize", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert len(read(out).observations) == len(read(source).observations)


@pytest.mark.parametrize("case", READ_ALIKE)
def test_scan_reads_what_analyze_reads(tmp_path, case):
    result = run("scan", READ_ALIKE[case](tmp_path))
    assert result.exit_code in (0, 1) and "possible secret(s)" in result.output


NO_FLOW = {
    "a URL without a host": (lambda tmp: cassette_with(tmp, "uri: https://management.example.test/", "uri: http:///"),
                             "interaction 0"),
    "a broken IPv6 address": (lambda tmp: har_with(tmp, lambda e: e["request"].update(url="http://[::1/v1/jobs")),
                              "HAR entry 0"),
}


@pytest.mark.parametrize("command", ["sanitize", "scan"])
@pytest.mark.parametrize("case", NO_FLOW)
def test_an_entry_no_flow_can_carry_is_one_line_naming_it(tmp_path, case, command):
    make, where = NO_FLOW[case]
    source = make(tmp_path)
    result = run(command, source, *(["-o", tmp_path / "copy.flows"] if command == "sanitize" else []))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{source}: {where} is malformed" in result.output
    assert not (tmp_path / "copy.flows").exists()
