"""What a worker logged about a job: the other side of the HTTP boundary, as one model.

The proxy sees only what the client received; the worker's log says when the job really
changed state. Every log format (JSON lines, logfmt, plain text, OTLP/JSON) is read into this
one `WorkerEvent`, so joining events to jobs and the rules that compare the two views never
depend on where an event came from. Only the fields the join and the rules need are kept,
bounded, with URLs redacted: a worker's log line may carry secrets.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from pollwatch.core.redact import redact_log_text, redact_text
from pollwatch.core.states import State, Vocabulary

__all__ = ["WorkerEvent", "WorkerSettings", "MESSAGE_LIMIT", "ID_LIMIT", "trace_id_of", "canonical_state",
           "credential_like", "safe_id"]

MESSAGE_LIMIT = 200
"""Characters of the log message kept: enough to recognise the line, too few for a payload."""
ID_LIMIT = 128
"""Characters of an id kept; longer values are not ids anyone correlates by."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$", re.IGNORECASE)
_DEFAULT_VOCABULARY = Vocabulary()
_CREDENTIAL = re.compile(r"^(?:bearer|basic|digest|token)\b|^eyJ[\w-]+\.[\w-]+\.|\s", re.IGNORECASE)
"""An auth scheme, a JWT, or any whitespace: not an id, whatever the field is called."""
LONG_SECRET = 48
"""Characters from which a high-entropy id without separators is taken for a key or token."""


def trace_id_of(value: str | None) -> str | None:
    """The trace id of a W3C `traceparent` value (`00-<trace id>-<span id>-<flags>`), lower case."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    return match.group(1).lower() if match else None


def canonical_state(word: str | None, vocabulary: Vocabulary | None = None) -> State | None:
    """The canonical state of a worker's state word; None when there is no word."""
    if word is None or not word.strip():
        return None
    return (vocabulary or _DEFAULT_VOCABULARY).normalise(word)


def _bounded(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    return -sum(n / len(text) * math.log2(n / len(text)) for n in Counter(text).values())


def credential_like(text: str) -> bool:
    """An "id" that is really a credential (`Bearer …`, a JWT, a long random key): never stored."""
    if trace_id_of(text):
        return False
    if _CREDENTIAL.search(text):
        return True
    return len(text) >= LONG_SECRET and not re.search(r"[-:/.]", text) and _entropy(text) > 4.0


def safe_id(value: Any) -> str | None:
    """An id as stored: bounded, URLs redacted, a credential replaced by a fingerprint (still
    tells events apart, joins nothing, reveals nothing)."""
    text = _bounded(value, 4 * ID_LIMIT)
    if text is None:
        return None
    if credential_like(text):
        return "redacted-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return redact_text(text)[:ID_LIMIT]


class WorkerEvent(BaseModel):
    """One worker log record that says something about a job.

    `ts` is epoch seconds on the proxy's clock (the reader applies any clock offset);
    `operation_ids` are request/operation ids and the trace id of a `traceparent`, the ids the
    proxy may also have seen on the job's exchanges; `source` is `file:line`."""

    ts: float
    job_id: str | None = None
    operation_ids: list[str] = Field(default_factory=list)
    trace_id: str | None = None
    state_word: str | None = None
    state: State | None = None
    source: str = ""
    message: str | None = None

    @field_validator("job_id", "trace_id", "state_word", mode="before")
    @classmethod
    def _short_id(cls, value: Any) -> str | None:
        return safe_id(value)

    @field_validator("message", mode="before")
    @classmethod
    def _short_message(cls, value: Any) -> str | None:
        text = _bounded(value, 4 * MESSAGE_LIMIT)  # redacted before cutting: no half-cut secret survives
        return _bounded(redact_log_text(text), MESSAGE_LIMIT) if text else None

    @field_validator("source", mode="before")
    @classmethod
    def _short_source(cls, value: Any) -> str:
        return redact_text(str(value or ""))[:300]

    @field_validator("operation_ids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> list[str]:
        seen: list[str] = []
        for item in value or ():
            text = safe_id(item)
            if text and text not in seen:
                seen.append(text)
        return seen

    @model_validator(mode="after")
    def _derive(self) -> "WorkerEvent":
        """A traceparent among the ids also gives the trace id; a word without a state gets one."""
        for value in list(self.operation_ids):
            trace = trace_id_of(value)
            if trace and self.trace_id is None:
                self.trace_id = trace
        if self.trace_id and self.trace_id not in self.operation_ids:
            self.operation_ids.append(self.trace_id)
        if self.state is None and self.state_word:
            self.state = canonical_state(self.state_word)
        return self

    @property
    def link_ids(self) -> frozenset[str]:
        """Every id this event can be joined by besides the job id (operation ids, trace id)."""
        return frozenset(self.operation_ids)

    @property
    def terminal(self) -> bool:
        return self.state is not None and self.state.terminal


class WorkerSettings(BaseModel):
    """How worker events are judged. `grace` is how long the status may trail the worker's log
    before it counts (the status store is written just after the log line; clocks drift)."""

    grace: float = Field(0.1, ge=0, description="Seconds a status may trail the worker's terminal log line")
