"""Canonical job states and the vendor words that mean them.

Every API spells its states differently (NotStarted, IN_PROGRESS, Succeeded, done=true...).
Rules compare canonical states only, so the words are normalised once, here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any


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
        "waiting", "validating", "runnable", "created", "new", "initializing",
    ),
    State.RUNNING: (
        "running", "inprogress", "processing", "started", "starting", "dequeued",
        "executing", "creating", "updating", "deleting", "finalizing", "cancelling", "canceling",
        "provisioning", "migrating",
    ),
    State.SUCCEEDED: (
        "succeeded", "success", "successful", "completed", "complete", "done", "finished",
        "partialsuccess", "partiallysucceeded",
    ),
    State.FAILED: (
        "failed", "failure", "error", "errored", "validationfailed", "timedout", "incomplete",
    ),
    State.CANCELLED: ("canceled", "cancelled", "aborted"),
    State.EXPIRED: ("expired",),
}
DEFAULT_VOCABULARY: dict[str, State] = {word: state for state, words in _WORDS.items() for word in words}

DEFAULT_STATE_FIELDS: tuple[str, ...] = (
    "status", "state", "provisioningState", "properties.provisioningState", "jobStatus",
    "JobStatus", "phase",
)

_SEPARATORS = re.compile(r"[\s_\-]+")


def fold(word: str) -> str:
    """The lookup key of a state word: lower case without spaces, underscores or hyphens."""
    return _SEPARATORS.sub("", word).lower()


class Vocabulary:
    """Maps vendor state words to canonical states; extendable with `word=state` pairs."""

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        self._words = dict(DEFAULT_VOCABULARY)
        for word, state in (extra or {}).items():
            self._words[fold(word)] = State(state.strip().lower())

    def normalise(self, word: str) -> State:
        return self._words.get(fold(word), State.UNKNOWN)


def parse_json_object(body: bytes) -> Mapping[str, Any] | None:
    """The body as a JSON object, or None when it is empty, not JSON or not an object."""
    text = body.lstrip()
    if not text.startswith(b"{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path (`properties.provisioningState`), or None."""
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


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
