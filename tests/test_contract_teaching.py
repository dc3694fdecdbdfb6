"""A contract teaches pollwatch an API its built-in rules miss, through every entry point: the core
(`Config.from_contract`), `pollwatch analyze --contract` and the addon's `pollwatch_contract`
option; the one-by-one options add to the same settings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from mitmproxy import exceptions, http, io
from mitmproxy.test import taddons, tflow

from helpers import Traffic
from pollwatch.cli.app import main
from pollwatch.core.config import Config
from pollwatch.core.tracking import Tracker
from pollwatch.mitm.addon import PollWatch
from pollwatch.sources.analysis import check_contract, infer_contract
from pollwatch.contract_file import dump_contract, parse_contract

BAKERY = """\
version: 1
families:
  - name: POST /bakery/batches
    create: {method: POST, path: /bakery/batches}
    reference: {id_from: [body.batch.ref]}
    status_url: {templates: ['/bakery/ovens/{id}/progress']}
    state:
      fields: [batch.stage]
      words: {Baking: running, Cooled: succeeded}
"""
"""A made-up API: the id in `batch.ref`, the state in `batch.stage`, words no rule knows, no link."""
STATUS = "/bakery/ovens/b-77/progress"


def batch(stage: str) -> dict:
    return {"batch": {"ref": "b-77", "stage": stage}, "oven": 3}


def bake(traffic: Traffic) -> list:
    updates = [traffic.exchange("POST", "/bakery/batches", 202, body=batch("Baking"))]
    for stage in ("Baking", "Baking", "Cooled"):
        updates.append(traffic.exchange("GET", STATUS, 200, body=batch(stage), headers={"Cache-Control": "no-store"}))
    return updates


def write_bakery_recording(path: Path) -> Path:
    """The bakery's traffic as a mitmproxy flow file."""
    steps = [("POST", "/bakery/batches", 202, batch("Baking"))] + [("GET", STATUS, 200, batch(s))
                                                                   for s in ("Baking", "Baking", "Cooled")]
    with path.open("wb") as f:
        writer = io.FlowWriter(f)
        for i, (method, target, status, body) in enumerate(steps):
            flow = tflow.tflow(req=http.Request.make(method, f"http://bakery.test{target}"),
                               resp=http.Response.make(status, json.dumps(body), {"Cache-Control": "no-store"}))
            flow.request.timestamp_start = 1_795_881_600.0 + i
            flow.response.timestamp_start = flow.response.timestamp_end = 1_795_881_600.05 + i
            writer.add(flow)
    return path


def test_without_a_contract_the_bakery_is_not_understood():
    created, *polls = bake(Traffic(Tracker()))
    assert [f.code for f in created.findings] == ["accepted-without-job-reference"]
    assert polls == [None, None, None]


def test_a_contract_teaches_the_id_field_state_field_words_and_template():
    created, *polls = bake(Traffic(Tracker(Config.from_contract(parse_contract(BAKERY)))))
    assert created.job.job_id == "b-77"
    assert [(p.poll.raw_state, p.poll.state) for p in polls] == [
        ("Baking", "running"), ("Baking", "running"), ("Cooled", "succeeded")]
    assert polls[-1].job.terminal_state == "succeeded"


def test_a_compound_phase_and_outcome_is_decided_by_the_outcome_field():
    contract = parse_contract("""\
version: 1
families:
  - name: POST /bakery/batches
    state:
      fields: [run.status]
      outcome_fields: [run.verdict]
      words: {Proving: running, Cooled/Green: succeeded, Cooled/Burnt: failed}
""")
    traffic = Traffic(Tracker(Config.from_contract(contract)))
    traffic.create(body={"id": "e-1", "run": {"status": "Proving"}, "oven": 3})
    update = traffic.poll(body={"id": "e-1", "run": {"status": "Cooled", "verdict": "Burnt"}, "oven": 3})
    assert (update.poll.raw_state, update.poll.state, update.poll.state_source) == (
        "Cooled/Burnt", "failed", "run.status+run.verdict")


def test_options_are_shorthands_that_add_to_the_contract():
    config = Config.from_contract(parse_contract(BAKERY), states={"Proving": "queued"}, templates=["/v1/jobs/{id}"],
                                  state_fields=["batch.stage"])
    assert config.templates == ["/bakery/ovens/{id}/progress", "/v1/jobs/{id}"]
    assert config.state_fields == ["batch.stage"]
    assert config.states == {"Baking": "running", "Cooled": "succeeded", "Proving": "queued"}
    assert config.id_fields == ["batch.ref"]


def test_analyze_with_a_contract_tracks_the_taught_api(tmp_path):
    recording = write_bakery_recording(tmp_path / "bakery.flows")
    (tmp_path / "bakery.yaml").write_text(BAKERY)
    db = tmp_path / "bakery.sqlite"
    result = CliRunner().invoke(main, ["analyze", str(recording), "--db", str(db), "--contract",
                                       str(tmp_path / "bakery.yaml")])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("select job_id, terminal_state from jobs").fetchall() == [("b-77", "succeeded")]


def test_a_contract_inferred_with_a_taught_contract_keeps_teaching_and_checks_clean(tmp_path):
    recording = write_bakery_recording(tmp_path / "bakery.flows")
    learnt = infer_contract([recording], config=Config.from_contract(parse_contract(BAKERY)))[0]
    written = parse_contract(dump_contract(learnt))
    assert written.families[0].state.words == {"Baking": "running", "Cooled": "succeeded"}
    assert check_contract([recording], written).drift == []


async def test_the_addon_uses_a_contract_given_with_set(tmp_path):
    (tmp_path / "bakery.yaml").write_text(BAKERY)
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="", pollwatch_contract=str(tmp_path / "bakery.yaml"))
        for method, target, status, stage in [("POST", "/bakery/batches", 202, "Baking"), ("GET", STATUS, 200, "Cooled")]:
            flow = tflow.tflow(req=http.Request.make(method, f"http://bakery.test{target}"),
                               resp=http.Response.make(status, json.dumps(batch(stage)), {"Cache-Control": "no-store"}))
            await tctx.cycle(addon, flow)
        (job,) = addon.tracker.jobs.values()
        assert (job.job_id, job.last_state.value) == ("b-77", "succeeded")


def test_the_addon_rejects_a_broken_contract_as_an_option_error_naming_its_line(tmp_path):
    (tmp_path / "broken.yaml").write_text(BAKERY.replace("Cooled: succeeded", "Cooled: done"))
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=r"broken\.yaml: line 9: families\.0\.state\.words\.Cooled"):
            tctx.configure(addon, pollwatch_db="", pollwatch_contract=str(tmp_path / "broken.yaml"))
