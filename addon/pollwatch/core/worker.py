"""What a worker logged about a job: the other side of the HTTP boundary, as one model.

The proxy sees only what the client received; the worker's log says when the job really
changed state. Every log format (JSON lines, logfmt, plain text, OTLP/JSON) is read into this
one `WorkerEvent`, so joining events to jobs and the rules that compare the two views never
depend on where an event came from. Only the fields the join and the rules need are kept,
bounded, with URLs redacted: a worker's log line may carry secrets.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from pollwatch.core.redact import fingerprint, redact_log_text, redact_text, safe_value
from pollwatch.core.states import State, Vocabulary

__all__ = ["WorkerEvent", "WorkerSettings", "MESSAGE_LIMIT", "ID_LIMIT", "trace_id_of", "canonical_state",
           "safe_id"]

MESSAGE_LIMIT = 200
"""Characters of the log message kept: enough to recognise the line, too few for a payload."""
ID_LIMIT = 128
"""Characters of an id kept; longer values are not ids anyone correlates by."""

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$", re.IGNORECASE)
_DEFAULT_VOCABULARY = Vocabulary()
_AUTH_SCHEME = re.compile(r"^(?:bearer|basic|digest|token)\s", re.IGNORECASE)
"""A credential with its scheme (`Bearer ...`): not an id, whatever the field is called."""


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


def safe_id(value: Any) -> str | None:
    """An id as stored: bounded and made safe exactly as the jobs table makes its ids (secret-shaped
    ids become the same fingerprint there and here, so they still join); a credential with its
    scheme becomes a fingerprint of its own."""
    text = _bounded(value, 4 * ID_LIMIT)
    if text is None:
        return None
    if _AUTH_SCHEME.match(text):
        return fingerprint(text)
    return safe_value(text)[:ID_LIMIT]  # what the jobs table stores for the same id: they join


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
