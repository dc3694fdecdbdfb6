"""Every committed recording, fed through the addon (`mitmdump -nr FILE -s pollwatch`), must give
the findings and state sequences its expected file names."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pollwatch.demo import SCENARIOS
from helpers import read_through_mitmdump
from pollwatch.core.findings import CATALOGUE, Severity

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
EXPECTED = sorted(RECORDINGS.glob("*.expected.json"))


RECORDED_ELSEWHERE = {"crud-sync"}
"""Recordings made by their own script (scripts/record_crud.py), not demo scenarios."""


LIVE_ONLY = {name for name, scenario in SCENARIOS.items() if scenario.proxy_options}
"""Scenarios that need the live proxy's options (an origin to ask, a fix changing responses)."""


def test_every_scenario_has_a_recording():
    assert LIVE_ONLY, "the demo shows verification and the fix live"
    assert {p.name.removesuffix(".expected.json") for p in EXPECTED} == (set(SCENARIOS) - LIVE_ONLY) | RECORDED_ELSEWHERE


@pytest.mark.parametrize("expected_file", EXPECTED, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_recording_reproduces_its_findings_and_states(expected_file, tmp_path):
    expected = json.loads(expected_file.read_text())
    db = tmp_path / "offline.sqlite"
    read_through_mitmdump(RECORDINGS / f"{expected['scenario']}.flows", db)
    with sqlite3.connect(db) as conn:
        codes = sorted({row[0] for row in conn.execute("select code from findings")})
        jobs = [{"job_id": j, "states": json.loads(s)}
                for j, s in conn.execute("select job_id, states from jobs order by created_at, key")]
    assert set(expected["must_include"]) <= set(codes)
    assert codes == expected["codes"]
    assert jobs == expected["jobs"]
    if not expected["must_include"]:
        assert [c for c in codes if CATALOGUE[c].severity is not Severity.INFO] == []
