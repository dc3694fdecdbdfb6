"""Documents whose shape would explode the work done on them are refused in one line (issue 16):
a few hundred bytes of nested YAML aliases ("billion laughs"), an alias that contains itself, and
nesting deeper than any recording needs, in a cassette, a HAR file and a contract file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pollwatch import safe_yaml
from test_bad_input_files import error_line, run_cli

DATA = Path(__file__).resolve().parent / "data" / "recordings"
CASSETTE = (DATA / "vcrpy.yaml").read_text(encoding="utf-8")
LAUGHS = "a0: &a0 [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9))
"""387,420,489 copies of `lol` in 414 bytes."""
COMMANDS = {
    "analyze": ["analyze", "{file}", "--db", "{tmp}/new.sqlite"],
    "sanitize": ["sanitize", "{file}", "-o", "{tmp}/copy.flows"],
    "scan": ["scan", "{file}"],
}


def cassette_with(tmp_path: Path, extra: str, preamble: str = "") -> Path:
    """The VCR.py fixture cassette whose first interaction also carries `extra: <extra>`."""
    path = tmp_path / "cassette.yaml"
    path.write_text(preamble + CASSETTE.replace("interactions:\n- request:", f"interactions:\n- extra: {extra}\n  request:", 1),
                    encoding="utf-8")
    return path


def run(command: str, file: Path, tmp_path: Path) -> str:
    return error_line(run_cli(*[part.format(file=file, tmp=tmp_path) for part in COMMANDS[command]]))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_billion_laughs_cassette_is_refused_in_one_line(tmp_path, command):
    cassette = cassette_with(tmp_path, "*a8", preamble="lols:\n" + "".join(f"  {line}\n" for line in LAUGHS.splitlines()))
    line = run(command, cassette, tmp_path)
    assert str(cassette) in line and "aliases expand" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cassette.yaml"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_alias_that_contains_itself_is_refused_in_one_line(tmp_path, command):
    cassette = cassette_with(tmp_path, "&loop [1, *loop]")
    line = run(command, cassette, tmp_path)
    assert str(cassette) in line and "contains it" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_cassette_nested_deeper_than_the_limit_is_refused_in_one_line(tmp_path, command):
    """600 levels: within what the YAML parser takes, beyond what recursive walkers survive."""
    cassette = cassette_with(tmp_path, "[" * 600 + "]" * 600)
    line = run(command, cassette, tmp_path)
    assert str(cassette) in line and f"deeper than {safe_yaml.DEPTH_LIMIT}" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_a_har_file_nested_deeper_than_the_limit_is_refused_in_one_line(tmp_path, command):
    har = json.loads((DATA / "polly.har").read_text(encoding="utf-8"))
    text = json.dumps(har).replace('"_order": 0', '"_order": 0, "_deep": ' + "[" * 600 + "]" * 600, 1)
    path = tmp_path / "deep.har"
    path.write_text(text, encoding="utf-8")
    line = run(command, path, tmp_path)
    assert str(path) in line and f"deeper than {safe_yaml.DEPTH_LIMIT}" in line


def test_a_contract_file_of_nested_aliases_is_refused_in_one_line_naming_it(tmp_path):
    contract = tmp_path / "contract.yaml"
    contract.write_text("lols:\n" + "".join(f"  {line}\n" for line in LAUGHS.splitlines()) + "version: 1\nfamilies: *a8\n",
                        encoding="utf-8")
    line = error_line(run_cli("analyze", DATA / "vcrpy.yaml", "--db", tmp_path / "new.sqlite", "--contract", contract))
    assert f"contract {contract}" in line and "aliases expand" in line


def test_aliases_that_only_repeat_a_little_are_read():
    document = safe_yaml.load("base: &b {state: running}\nfirst: *b\nsecond: *b\n")
    assert document["second"] == {"state": "running"}
