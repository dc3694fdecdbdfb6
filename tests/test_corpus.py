"""Real-world traffic: VCR cassettes that a public cloud SDK's test suite recorded against real
APIs (../shared/corpus/azure-sdk-cassettes, beside the project). Every long-running operation must
be found and tracked to the terminal state the recording shows, with no error-severity finding on
correct traffic; the problems the cassettes really show are named here."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pollwatch.sources.analysis import analyze_recordings

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "azure-sdk-cassettes"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")


def operations_started(path: Path) -> int:
    """Independently of pollwatch: responses that start a long-running operation."""
    started = 0
    for interaction in yaml.safe_load(path.read_text())["interactions"]:
        response = interaction["response"]
        headers = {k.lower() for k in response["headers"]}
        code = response["status"]["code"]
        started += code == 202 or (code in (200, 201) and bool(headers & {"azure-asyncoperation", "operation-location"}))
    return started


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    db = tmp_path_factory.mktemp("corpus") / "corpus.sqlite"
    analyze_recordings([CORPUS], db)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def test_every_long_running_operation_is_found(corpus):
    expected = sum(operations_started(p) for p in CORPUS.glob("*.yaml"))
    created = corpus.execute("select count(*) from jobs where created_by = 'response'").fetchone()[0]
    assert expected == 34 and created == expected


def test_every_operation_reaches_the_terminal_state_its_recording_shows(corpus):
    terminal = Counter(r[0] for r in corpus.execute("select terminal_state from jobs"))
    # 32 succeed; an ExpressRoute global-reach connection ends "Failed" (InitiatingCircuitNotProvisioned);
    # the document translation is cancelled ("Cancelled").
    assert terminal == {"succeeded": 32, "failed": 1, "cancelled": 1}


def test_vendor_state_words_are_all_known(corpus):
    words = {r[0] for r in corpus.execute("select distinct raw_state from polls where raw_state is not null")}
    assert {"InProgress", "Succeeded", "notStarted", "inProgress", "completed", "Cancelled"} <= words
    assert corpus.execute("select count(*) from polls where state = 'unknown'").fetchone()[0] == 0


def test_no_error_severity_on_correct_traffic(corpus):
    assert corpus.execute("select code, message from findings where severity = 'error'").fetchall() == []


def test_the_problems_the_cassettes_really_show_are_named(corpus):
    found = {(r["code"], r["job_id"]) for r in corpus.execute("select code, job_id from findings")}
    assert found == {
        # text analytics: the SDK reads the finished job once more to build its result
        ("poll-after-terminal", "89062eee-7c37-4d62-8e05-78c5cd0f4fc3"),
        # Key Vault: Location names .../pending?request_id=..., the SDK polls .../pending without it,
        # and then reads the finished operation once more
        ("non-canonical-status-url", "8d5cbd398da847bfbcafa13bce7daeb1"),
        ("poll-after-terminal", "8d5cbd398da847bfbcafa13bce7daeb1"),
        # document translation: the status response says Cache-Control: public, max-age=1
        ("status-cacheable", "c44fe4a2-9afa-49e9-8521-c69b3b7e4269"),
    }


def test_translation_status_really_is_cacheable(corpus):
    [(evidence,)] = corpus.execute("select evidence from findings where code = 'status-cacheable'").fetchall()
    assert "max-age=1" in json.loads(evidence)["headers"]["cache-control"]
