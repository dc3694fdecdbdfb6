"""Damaged mitmproxy flow files are one line naming the file and the flow (issue 16): a flow that
breaks mitmproxy's reader or its format migration, a flow of the wrong shape, and a flow whose
times no clock can show (NaN, infinity, year 41688), which the database, `jobs`, `show` and the
report could not handle. Nothing is stored from such a file."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mitmproxy.io import FlowReader, FlowWriter, tnetstring

from helpers import RECORDINGS
from pollwatch.cli.app import main

HEALTHY = RECORDINGS / "healthy.flows"
DAMAGED = 3
"""The flow each test damages (counted from 0, as the error line counts)."""


def flow_file_with(tmp_path: Path, damage: Callable[[dict[str, Any]], None]) -> Path:
    """healthy.flows with flow DAMAGED's serialized state changed by `damage`, as a damaged disk
    or another program would leave it (mitmproxy's own writer would refuse)."""
    data = HEALTHY.read_bytes()
    stream, states = io.BytesIO(data), []
    while stream.tell() < len(data):
        states.append(tnetstring.load(stream))
    damage(states[DAMAGED])
    path = tmp_path / "damaged.flows"
    path.write_bytes(b"".join(tnetstring.dumps(state) for state in states))
    return path


def flow_file_with_times(tmp_path: Path, when: float) -> Path:
    """healthy.flows with flow DAMAGED's request and response at `when`, written by mitmproxy."""
    with HEALTHY.open("rb") as f:
        flows = list(FlowReader(f).stream())
    flows[DAMAGED].request.timestamp_start = flows[DAMAGED].response.timestamp_end = when
    path = tmp_path / "times.flows"
    with path.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    return path


def refused(tmp_path: Path, path: Path, command: str = "analyze") -> str:
    """The one line `command` gives for `path`; nothing but the input is left in its folder."""
    args = {"analyze": ["analyze", str(path), "--db", str(tmp_path / "new.sqlite")],
            "sanitize": ["sanitize", str(path), "-o", str(tmp_path / "copy.flows")]}[command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    return result.output


DAMAGE = {
    "an old format version its migration cannot follow": lambda state: state.update(version=7),
    "a connection that is not a mapping": lambda state: state.update(client_conn="x"),
    "metadata that is not a mapping": lambda state: state.update(metadata=5),
    "a client address of one part": lambda state: state["client_conn"].update(peername=[b"10.0.0.1"]),
}


@pytest.mark.parametrize("command", ["analyze", "sanitize"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_flow_is_one_line_naming_the_file_and_the_flow(tmp_path, damage, command):
    path = flow_file_with(tmp_path, DAMAGE[damage])
    line = refused(tmp_path, path, command)
    assert str(path) in line and f"flow {DAMAGED} at byte" in line


@pytest.mark.parametrize("when", [float("nan"), float("inf"), 1_253_400_000_000.0, -5.0],
                         ids=["nan", "infinity", "year-41688", "before-1970"])
def test_a_flow_whose_time_no_clock_can_show_is_refused_in_one_line(tmp_path, when):
    path = flow_file_with_times(tmp_path, when)
    line = refused(tmp_path, path)
    assert str(path) in line and f"flow {DAMAGED}" in line and "not a time between 1970 and 2100" in line
