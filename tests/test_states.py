"""Normalising vendor state words and reading states from status documents."""

import pytest

from pollwatch.core.states import State, Vocabulary, read_done_flag, read_state_word, DEFAULT_STATE_FIELDS


@pytest.mark.parametrize("word, state", [
    *[(w, State.QUEUED) for w in ("NotStarted", "Accepted", "Pending", "Queued", "Enqueued", "Submitted",
                                    "Scheduled", "Waiting", "Validating", "Runnable", "Created", "notStarted",
                                    "Starting", "planned", "RECEIVED")],
    *[(w, State.RUNNING) for w in ("Running", "InProgress", "In_Progress", "IN_PROGRESS", "inProgress",
                                    "Processing", "Started", "Dequeued", "Executing", "building", "RETRY",
                                    "Creating", "Updating", "Deleting", "Finalizing", "Cancelling")],
    *[(w, State.SUCCEEDED) for w in ("Succeeded", "Success", "Completed", "completed", "Complete", "Done",
                                      "Finished", "PartialSuccess", "PARTIAL_SUCCESS")],
    *[(w, State.FAILED) for w in ("Failed", "Failure", "Error", "Errored", "ValidationFailed", "Timed_Out",
                                   "TIMED_OUT", "TimedOut", "Incomplete")],
    *[(w, State.CANCELLED) for w in ("Canceled", "Cancelled", "Aborted", "ABORTED")],
    ("Expired", State.EXPIRED),
])
def test_vendor_words_normalise_case_insensitively(word, state):
    assert Vocabulary().normalise(word) is state


def test_an_unknown_word_is_unknown_never_running():
    assert Vocabulary().normalise("Baking") is State.UNKNOWN


def test_vocabulary_is_extendable():
    assert Vocabulary({"Baking": "running"}).normalise("baking") is State.RUNNING


def test_lifecycle_order_puts_queued_before_running_before_terminal():
    assert State.QUEUED.rank < State.RUNNING.rank < State.SUCCEEDED.rank == State.FAILED.rank
    assert {s for s in State if s.terminal} == {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.EXPIRED}


@pytest.mark.parametrize("document, expected", [
    ({"status": "Running"}, ("status", "Running")),
    ({"state": "queued"}, ("state", "queued")),
    ({"provisioningState": "Creating"}, ("provisioningState", "Creating")),
    ({"properties": {"provisioningState": "Succeeded"}}, ("properties.provisioningState", "Succeeded")),
    ({"jobStatus": "SUBMITTED"}, ("jobStatus", "SUBMITTED")),
    ({"JobStatus": "IN_PROGRESS"}, ("JobStatus", "IN_PROGRESS")),
    ({"phase": "Pending"}, ("phase", "Pending")),
])
def test_state_fields_are_read_from_known_paths(document, expected):
    assert read_state_word(document, DEFAULT_STATE_FIELDS) == expected


def test_non_string_status_values_are_not_states():
    assert read_state_word({"status": 200}, DEFAULT_STATE_FIELDS) is None


@pytest.mark.parametrize("document, state", [
    ({"done": False}, State.RUNNING),
    ({"done": True, "response": {"x": 1}}, State.SUCCEEDED),
    ({"done": True, "error": {"code": 13}}, State.FAILED),
    ({"done": True, "error": {"code": 1}}, State.CANCELLED),
])
def test_google_done_flag(document, state):
    assert read_done_flag(document)[1] is state
