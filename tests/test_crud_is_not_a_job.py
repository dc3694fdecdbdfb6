"""Ordinary synchronous CRUD traffic is not an asynchronous job: recordings/crud-sync.flows (made by
scripts/record_crud.py: 201s with ids and Location, repeated GETs of the same note with ETag
revalidation, PUT, PATCH, DELETE, a 404 after delete) analysed offline gives no job and no finding."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mitmproxy import http, io

from pollwatch.sources.analysis import AnalysisSummary, analyze_recordings

RECORDING = Path(__file__).resolve().parent.parent / "recordings" / "crud-sync.flows"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> tuple[AnalysisSummary, Path]:
    db = tmp_path_factory.mktemp("crud") / "offline.sqlite"
    return analyze_recordings([RECORDING], db), db


def count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_crud_traffic_gives_no_job(analysed):
    summary, db = analysed
    assert summary.jobs == 0
    assert count(db, "jobs") == 0
    assert count(db, "polls") == 0


def test_crud_traffic_gives_no_finding(analysed):
    summary, db = analysed
    assert summary.findings == {}
    assert count(db, "findings") == 0


def test_the_analysis_read_every_exchange_of_the_recording(analysed):
    summary, _ = analysed
    with RECORDING.open("rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert flows and all(isinstance(flow, http.HTTPFlow) for flow in flows)
    assert summary.exchanges == len(flows)
