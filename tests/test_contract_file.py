"""Contract files and the `pollwatch contract` commands: a broken file is one line naming the file
and the line; `infer` writes a file `check` reads back; `check` exits 1 on drift, with JSON for CI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import RECORDINGS
from pollwatch.cli.app import main
from pollwatch.errors import ConfigError
from pollwatch.contract_file import load_contract, parse_contract

GOOD = """\
version: 1
families:
  - name: POST /api/exports
    create: {method: POST, path: /api/exports, status: [202]}
    state:
      fields: [status]
      words: {queued: queued, running: running}
"""


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("running: running", "running: cooking"), r"line 7: families\.0\.state\.words\.running: Input should be"),
    (GOOD.replace("    state:", "    states:"), r"line 5: families\.0\.states: Extra inputs are not permitted"),
    (GOOD.replace("version: 1", "version: 2"), r"line 1: version: Input should be 1"),
    (GOOD.replace("create: {method: POST, ", "create: {"), r"line 4: families\.0\.create\.method: Field required"),
    (GOOD.replace("status: [202]", "status: [accepted]"), r"line 4: families\.0\.create\.status\.0: Input should be"),
    (GOOD.replace("fields: [status]", "fields: [status"), r"line 7: not valid YAML"),
    ("", r"empty"),
])
def test_a_broken_contract_names_the_file_and_the_line(tmp_path, text, message):
    path = tmp_path / "contract.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^contract {path}: {message}"):
        load_contract(path)


def test_a_good_contract_reads():
    assert parse_contract(GOOD).families[0].state.words == {"queued": "queued", "running": "running"}


def test_infer_writes_a_contract_that_check_accepts(tmp_path):
    out = tmp_path / "contract.yaml"
    runner = CliRunner()
    inferred = runner.invoke(main, ["contract", "infer", str(RECORDINGS / "healthy.flows"), "-o", str(out)])
    assert inferred.exit_code == 0, inferred.output
    checked = runner.invoke(main, ["contract", "check", str(RECORDINGS / "healthy.flows"), "--contract", str(out)])
    assert checked.exit_code == 0, checked.output
    assert "no drift" in checked.output


def test_check_exits_1_and_lists_the_drift_as_json(tmp_path):
    out = tmp_path / "contract.yaml"
    runner = CliRunner()
    runner.invoke(main, ["contract", "infer", str(RECORDINGS / "healthy.flows"), "-o", str(out)])
    result = runner.invoke(main, ["contract", "check", str(RECORDINGS / "cached-status.flows"), "--contract", str(out),
                                  "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["drift"] == [{
        "family": "POST /api/exports", "aspect": "cache headers",
        "change": "cache-control on status responses: max-age=30 (contract: no-store)"}]


def test_check_prints_a_table_of_the_drift_for_people(tmp_path):
    out = tmp_path / "contract.yaml"
    runner = CliRunner()
    runner.invoke(main, ["contract", "infer", str(RECORDINGS / "healthy.flows"), "-o", str(out)])
    result = runner.invoke(main, ["contract", "check", str(RECORDINGS / "wrong-env.flows"), "--contract", str(out)])
    assert result.exit_code == 1
    assert "drift(s)" in result.output and "new status host http://127.0.0.1:18181" in result.output


def test_a_broken_contract_is_a_one_line_command_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(GOOD.replace("running: running", "running: cooking"))
    result = CliRunner().invoke(main, ["contract", "check", str(RECORDINGS / "healthy.flows"), "--contract",
                                       str(broken)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: contract {broken}: line 7:")
    assert len(result.output.strip().splitlines()) == 1


def test_infer_prints_the_contract_without_an_output_file():
    result = CliRunner().invoke(main, ["contract", "infer", str(RECORDINGS / "healthy.flows")])
    assert result.exit_code == 0
    assert parse_contract(result.output).families[0].name == "POST /api/exports"
