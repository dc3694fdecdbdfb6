"""Canonical job states and the vendor words that mean them.

Every API spells its states differently (NotStarted, IN_PROGRESS, Succeeded, done=true...).
Rules compare canonical states only, so the words are normalised once, here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from pollwatch.core.documents import layers, lookup, parse_json_object
from pollwatch.core.memo import remembered_when_short

__all__ = ["State", "TERMINAL", "Vocabulary", "StateWord", "state_of", "JOB_WORDS", "says_work_in_progress", "read_state_word", "read_done_flag",
           "parse_json_object", "lookup", "fold", "DEFAULT_STATE_FIELDS"]


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def rank(self) -> int | None:
        """Lifecycle order: queued < running < any terminal state; None for unknown."""
        return _RANK.get(self)


TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED, State.EXPIRED})
_RANK = {State.QUEUED: 0, State.RUNNING: 1} | {s: 2 for s in TERMINAL}

_WORDS: dict[State, tuple[str, ...]] = {
    State.QUEUED: (
        "notstarted", "accepted", "pending", "queued", "enqueued", "submitted", "scheduled",
        "waiting", "validating", "runnable", "created", "new", "initializing", "planned", "starting",
        "received",
    ),
    State.RUNNING: (
        "running", "inprogress", "processing", "started", "dequeued",
        "executing", "creating", "updating", "deleting", "finalizing", "cancelling", "canceling",
        "provisioning", "migrating", "building", "retry", "retrying",
    ),
    State.SUCCEEDED: (
        "succeeded", "success", "successful", "completed", "complete", "done", "finished",
        "partialsuccess", "partiallysucceeded", "terminated",
        # a resource polled until it is usable (resource-state polling)
        "available", "active", "ready", "inuse",
    ),
    State.FAILED: (
        "failed", "failure", "error", "errored", "validationfailed", "timedout", "incomplete",
    ),
    # `stopped` alone is a user's cancellation; with an outcome field it means finished (see read_state)
    State.CANCELLED: ("canceled", "cancelled", "aborted", "revoked", "stopped"),
    State.EXPIRED: ("expired",),
}
JOB_WORDS = frozenset({
    "notstarted", "queued", "enqueued", "submitted", "scheduled", "waiting", "validating", "runnable", "initializing",
    "planned", "starting", "inprogress", "processing", "started", "dequeued", "executing", "creating", "updating",
    "deleting", "finalizing", "provisioning", "migrating", "building", "retry", "retrying",
})
"""Non-terminal words that say work is in progress. Words a resource may simply have (`pending`
orders, `new` tickets, `running` machines, `accepted` invitations) are states, but no sign of a job."""

DEFAULT_VOCABULARY: dict[str, State] = {word: state for state, words in _WORDS.items() for word in words}

DEFAULT_STATE_FIELDS: tuple[str, ...] = (
    "status", "state", "provisioningState", "properties.provisioningState", "jobStatus",
    "JobStatus", "phase", "life_cycle_state", "lifecycleState",
)

FINAL_PHASES = frozenset({"completed", "complete", "terminated", "stopped", "finished", "done", "ended", "closed"})
"""Phase words that say only that a job ended; an outcome field beside them says how."""
OUTCOME_FIELDS: tuple[str, ...] = ("conclusion", "result_state", "resultState", "outcome", "result", "exitstatus",
                                   "exit_status")
EXIT_STATUS_FIELDS = frozenset({"exitstatus", "exit_status"})
"""Outcome fields that hold `OK` or an error message: any other text than a known word is a failure."""
_OUTCOMES: dict[State, tuple[str, ...]] = {
    State.SUCCEEDED: ("success", "succeeded", "successful", "ok", "warning", "passed", "neutral", "completed"),
    State.FAILED: ("failure", "failed", "error", "errored", "timedout", "internalerror", "startuperror"),
    State.CANCELLED: ("cancelled", "canceled", "aborted", "skipped", "revoked"),
}
OUTCOMES: dict[str, State] = {word: state for state, words in _OUTCOMES.items() for word in words}

_SEPARATORS = re.compile(r"[\s_\-]+")


def fold(word: str) -> str:
    """The lookup key of a state word: lower case without spaces, underscores or hyphens.
    Short words are remembered: a job's state word comes again with every poll, folded twice."""
    return _fold(word)


def _fold_word(word: str) -> str:
    return _SEPARATORS.sub("", word).lower()


_fold = remembered_when_short(_fold_word, longest=64, size=1024)


class Vocabulary:
    """Maps vendor state words to canonical states; extendable with `word=state` pairs.

    A pair whose word is `PHASE/OUTCOME` (`Cooled/Green=succeeded`, the form pollwatch records
    compound states in) teaches that PHASE only says the job ended and OUTCOME how; a plain word
    mapped to a terminal state also counts as an outcome word. `outcome_fields` are extra dotted
    paths (from the object the state was read in) of the field that decides a final phase."""

    def __init__(self, extra: Mapping[str, str] | None = None, *, outcome_fields: Sequence[str] = ()) -> None:
        self._words = dict(DEFAULT_VOCABULARY)
        self._outcomes = dict(OUTCOMES)
        self._final_phases = set(FINAL_PHASES)
        self.outcome_fields = tuple(outcome_fields)
        for word, state in (extra or {}).items():
            target = State(state.strip().lower())
            phase, compound, outcome = word.partition("/")
            if compound and phase.strip() and outcome.strip():
                self._final_phases.add(fold(phase))
                self._outcomes[fold(outcome)] = target
                continue
            self._words[fold(word)] = target
            if target.terminal:
                self._outcomes.setdefault(fold(word), target)

    def normalise(self, word: str) -> State:
        return self._words.get(fold(word), State.UNKNOWN)

    def outcome(self, word: str) -> State | None:
        """How a finished job ended, from an outcome word (`success`, `FAILED`, `timed_out`)."""
        return self._outcomes.get(fold(word))

    def is_final_phase(self, word: str) -> bool:
        """A phase word that only says the job ended (`completed`, `TERMINATED`)."""
        return fold(word) in self._final_phases


def says_work_in_progress(word: str) -> bool:
    """A word that on its own says a job is under way (see JOB_WORDS)."""
    return fold(word) in JOB_WORDS


class StateWord(NamedTuple):
    """A state read from a document: the raw text, its canonical state, and the field(s) it came from."""

    raw: str
    state: State
    source: str


def state_of(document: Mapping[str, Any], fields: Sequence[str], vocabulary: Vocabulary) -> StateWord | None:
    """The job state a document shows: the first state field found (in the document, else in the
    object it wraps), with a final phase (`completed`, `TERMINATED`, `stopped`) decided by the
    outcome field beside it (`conclusion`, `result_state`, `result`, `exitstatus`)."""
    for layer in layers(document):
        found = read_state_word(layer, fields)
        if found is not None:
            path, word = found
            return _with_outcome(layer, path, word, vocabulary) or StateWord(word, vocabulary.normalise(word), path)
    return None


def _with_outcome(document: Mapping[str, Any], path: str, word: str, vocabulary: Vocabulary) -> StateWord | None:
    if not vocabulary.is_final_phase(word):
        return None
    head = path.rpartition(".")[0]
    parent = lookup(document, head) if head else document
    if not isinstance(parent, Mapping):
        return None
    beside = [(field, parent.get(field), f"{f'{head}.' if head else ''}{field}") for field in OUTCOME_FIELDS]
    configured = [(p.rpartition(".")[2], lookup(document, p), p) for p in vocabulary.outcome_fields]
    for field, value, outcome_path in [*beside, *configured]:
        if not isinstance(value, str) or not value.strip():
            continue
        state = vocabulary.outcome(value)
        if state is None and field in EXIT_STATUS_FIELDS:
            state = State.FAILED  # an exit status other than OK is the error's message
        if state is not None:
            return StateWord(f"{word}/{value.strip()}", state, f"{path}+{outcome_path}")
    return None


def read_state_word(document: Mapping[str, Any], fields: Sequence[str]) -> tuple[str, str] | None:
    """The first state word found in `fields`, as (field path, word)."""
    for path in fields:
        value = lookup(document, path)
        if isinstance(value, str) and value.strip():
            return path, value.strip()
    return None


def read_done_flag(document: Mapping[str, Any]) -> tuple[str, State] | None:
    """Google AIP-151 operations: `done` false is running; true with `error` failed (code 1:
    cancelled), otherwise succeeded. Returns (raw description, state)."""
    done = document.get("done")
    if not isinstance(done, bool):
        return None
    if not done:
        return "done=false", State.RUNNING
    error = document.get("error")
    if isinstance(error, Mapping) and error:
        if error.get("code") == 1:
            return "done=true,error.code=1", State.CANCELLED
        return "done=true,error", State.FAILED
    return "done=true", State.SUCCEEDED
