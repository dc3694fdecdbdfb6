"""Contracts inferred from traffic and checked against it: `contract infer` writes what every
endpoint family does, `contract check` accepts the traffic it was inferred from and names each
way other traffic differs (the recordings of known faults against the healthy contract)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RECORDINGS
from pollwatch.core.contract import Contract, compare
from pollwatch.sources.analysis import check_contract, infer_contract
from pollwatch.contract_file import dump_contract, parse_contract
from pollwatch.sources.readers import expand

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
CORPORA = [SHARED / "azure-sdk-cassettes", SHARED / "other-vendors"]
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared corpus not found at {SHARED}")
CORPUS_FILES = [str(p) for corpus in CORPORA if corpus.is_dir() for p in expand([corpus])]


def inferred(*paths: Path | str) -> Contract:
    return infer_contract(paths)[0]


def healthy() -> Contract:
    return inferred(RECORDINGS / "healthy.flows")


def drift_of(recording: str, contract: Contract) -> list[tuple[str, str]]:
    return [(d.aspect, d.change) for d in check_contract([RECORDINGS / recording], contract).drift]


def assert_round_trip(paths: list[Path | str]) -> None:
    contract = inferred(*paths)
    written = parse_contract(dump_contract(contract))
    assert written == contract
    assert check_contract(paths, written).drift == []


@pytest.mark.parametrize("recording", sorted(p.name for p in RECORDINGS.glob("*.flows")))
def test_check_accepts_the_recording_its_contract_was_inferred_from(recording):
    assert_round_trip([RECORDINGS / recording])


def test_check_accepts_all_recordings_together_against_their_contract():
    assert_round_trip([RECORDINGS])


@needs_shared
@pytest.mark.parametrize("recording", CORPUS_FILES, ids=lambda p: Path(p).name)
def test_check_accepts_each_corpus_recording_against_its_contract(recording):
    assert_round_trip([recording])


@needs_shared
def test_check_accepts_both_corpora_together_against_their_contract():
    assert_round_trip(CORPORA)


def test_the_healthy_contract_says_how_jobs_are_created_named_polled_and_cached():
    (family,) = healthy().families
    assert family.name == "POST /api/exports"
    assert (family.create.method, family.create.path, family.create.status) == ("POST", "/api/exports", [202])
    assert (family.reference.id_from, family.reference.status_url_from) == (["body.id"], ["location"])
    assert family.status_url.templates == ["/api/exports/{id}"]
    assert family.state.fields == ["status"]
    assert family.state.words == {"queued": "queued", "running": "running", "succeeded": "succeeded"}
    assert family.state.terminal == ["succeeded"]
    assert family.status_responses.cache_headers == {"cache-control": ["no-store"]}


def test_the_written_contract_is_commented_and_the_same_line_for_line_each_time():
    first, second = dump_contract(healthy()), dump_contract(healthy())
    assert first == second
    assert first.startswith("# pollwatch job contract")
    assert "    # how jobs are created" in first and "    # status responses" in first


def test_cached_status_against_the_healthy_contract_names_the_changed_cache_headers():
    drift = drift_of("cached-status.flows", healthy())
    assert drift == [("cache headers", "cache-control on status responses: max-age=30 (contract: no-store)")]


def test_wrong_environment_against_the_healthy_contract_names_the_new_status_host():
    drift = drift_of("wrong-env.flows", healthy())
    assert ("host", "new status host http://127.0.0.1:18181 (contract: http://127.0.0.1:18180)") in drift


def test_a_heuristically_cacheable_status_is_drift_in_the_cache_headers():
    assert drift_of("cached-heuristic.flows", healthy()) == [
        ("cache headers", "cache-control on status responses: (absent) (contract: no-store)"),
        ("cache headers", "last-modified on status responses: * (contract: (absent))"),
    ]


def test_a_terminal_state_the_contract_does_not_list_is_drift():
    drift = drift_of("expired.flows", healthy())
    assert ("terminal state", "terminal state expired not in the contract's terminal set (succeeded)") in drift


def test_a_new_state_word_is_drift():
    contract = healthy()
    del contract.families[0].state.words["running"]
    assert ("state word", "new word 'running' (-> running)") in drift_of("healthy.flows", contract)


def test_a_vanished_state_word_is_drift():
    contract = healthy()
    contract.families[0].state.words["Baking"] = "running"
    assert ("state word", "vanished word 'Baking' (-> running)") in drift_of("healthy.flows", contract)


def test_a_changed_status_url_shape_is_drift():
    contract = healthy()
    contract.families[0].status_url.templates = ["/api/v1/exports/{id}"]
    assert ("status URL shape", "new status URL /api/exports/{id} (contract: /api/v1/exports/{id})") in \
        drift_of("healthy.flows", contract)


def test_other_id_like_segments_of_a_status_url_are_not_drift():
    contract, observed = healthy(), healthy()
    contract.families[0].status_url.templates = ["/tenants/t-1/exports/{id}"]
    observed.families[0].status_url.templates = ["/tenants/t-2/exports/{id}"]
    assert compare(contract, observed) == []


def test_a_changed_creation_status_code_is_drift():
    contract = healthy()
    contract.families[0].create.status = [201]
    assert ("creation status code", "new status code 202 (contract: 201)") in drift_of("healthy.flows", contract)


def test_a_family_the_contract_does_not_describe_is_drift_and_one_not_exercised_is_named():
    result = check_contract([RECORDINGS / "healthy-azure.flows"], healthy())
    assert [(d.family, d.aspect) for d in result.drift] == [("POST /api/translations", "family")]
    assert result.unexercised == ["POST /api/exports"]


def test_a_poll_of_an_unknown_id_joins_the_family_whose_status_url_it_fits():
    contract = inferred(RECORDINGS / "lost-id.flows")
    assert [f.name for f in contract.families] == ["POST /api/exports"]
