"""From a parsed log record (a flat or nested mapping) to a `WorkerEvent`: which fields hold the
job id, the operation ids, the state and the time, and how times are read.

Every line format (JSON lines, logfmt, a user's regex) produces a mapping and ends here, so the
field names and time rules are the same whatever the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from pollwatch.core.states import State, Vocabulary
from pollwatch.core.worker import WorkerEvent

JOB_FIELDS = ("job_id", "jobId", "job", "id")
OPERATION_FIELDS = ("operation_id", "operationId", "request_id", "requestId", "traceparent", "trace_id", "traceId")
STATE_FIELDS = ("state", "status", "event")
TIME_FIELDS = ("ts", "time", "timestamp", "@timestamp", "asctime")
MESSAGE_FIELDS = ("msg", "message", "event")

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[._:/-][A-Za-z0-9]+)*$")
"""One token, no spaces: `job.succeeded`, `job_succeeded`, `JobSucceeded`, `jobs/done`."""
_IDENT_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


class FieldNames(BaseModel):
    """Where a record keeps what pollwatch needs (dotted paths allowed); set per run."""

    job: list[str] = Field(default_factory=lambda: list(JOB_FIELDS))
    operation: list[str] = Field(default_factory=lambda: list(OPERATION_FIELDS))
    state: list[str] = Field(default_factory=lambda: list(STATE_FIELDS))
    time: list[str] = Field(default_factory=lambda: list(TIME_FIELDS))
    message: list[str] = Field(default_factory=lambda: list(MESSAGE_FIELDS))
    clock_offset: float = Field(0.0, description="Seconds added to every worker timestamp (worker clock skew)")
    states: dict[str, str] = Field(default_factory=dict, description="Extra state words: word -> canonical state")


class NoTime(ValueError):
    """A record that speaks about a job but carries no readable time."""


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """A field by name, or by dotted path into nested objects."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, Mapping | list):
        return None
    text = str(value).strip()
    return text or None


EARLIEST = 946684800.0
"""2000-01-01: an earlier time is an uptime or a counter, not a wall clock (it would read as 1970)."""
LATEST = 4102444800.0
"""2100-01-01: a later time is a mis-scaled or garbage number."""
_SCALES = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))
"""(from, divisor): epoch nanoseconds, microseconds, milliseconds, told apart by magnitude."""


def parse_time(value: Any) -> float | None:
    """Epoch seconds from ISO 8601 (a time without zone is UTC) or epoch s/ms/µs/ns; None for a
    time outside 2000-2100 (an uptime, garbage), so the line is counted as unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number: float | None = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            number = _iso(text)
    if number is None or not math.isfinite(number):
        return None
    number /= next((divisor for start, divisor in _SCALES if number > start), 1.0)
    return number if EARLIEST <= number <= LATEST else None


def _iso(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace(",", ".", 1) if "," in text[17:] else text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _state(record: Mapping[str, Any], fields: list[str], vocabulary: Vocabulary) -> tuple[str, State] | None:
    """The first field whose value is a state word, or one identifier ending in one
    (`job.succeeded`, `JobSucceeded`): the matched word and its state. Free text (structlog's
    `event` is the message) and numbers (an HTTP status) never count: `upload complete` is a step."""
    for path in fields:
        value = lookup(record, path)
        word = None if isinstance(value, int | float) else _scalar(value)
        if word is None or word.isdigit():
            continue
        found = state_word_of(word, vocabulary)
        if found is not None:
            return found
    return None


def state_word_of(text: str, vocabulary: Vocabulary) -> tuple[str, State] | None:
    """`text` itself when it is a state word; else the longest state word ending a single
    identifier-like token (`job.in_progress` -> `in_progress`); else None."""
    state = vocabulary.normalise(text)
    if state is not State.UNKNOWN:
        return text, state
    if not _IDENTIFIER.match(text):
        return None
    for part in _IDENT_WORDS.finditer(text):
        if part.start() == 0:
            continue
        state = vocabulary.normalise(text[part.start():])
        if state is not State.UNKNOWN:
            return text[part.start():], state
    return None


class Mapper:
    """Turns records into events with one run's field names."""

    def __init__(self, names: FieldNames | None = None) -> None:
        self.names = names or FieldNames()
        self._vocabulary = Vocabulary(self.names.states)

    def event(self, record: Mapping[str, Any], source: str) -> WorkerEvent | None:
        """The event a record describes; None when it names no job, operation or state. Raises
        NoTime for a record that would be an event but has no readable time."""
        n = self.names
        job_id = next((v for p in n.job if (v := _scalar(lookup(record, p))) is not None), None)
        ops = [v for p in n.operation if (v := _scalar(lookup(record, p))) is not None]
        found = _state(record, n.state, self._vocabulary)
        if job_id is None and not ops and found is None:
            return None
        ts = next((t for p in n.time if (t := parse_time(lookup(record, p))) is not None), None)
        if ts is None:
            raise NoTime("no readable time field")
        message = next((v for p in n.message if (v := _scalar(lookup(record, p))) is not None), None)
        trace = next((v.lower() for v in ops if _TRACE_ID.match(v.lower())), None)
        return WorkerEvent(ts=ts + n.clock_offset, job_id=job_id, operation_ids=ops, trace_id=trace,
                           state_word=found[0] if found else None, state=found[1] if found else None,
                           source=source, message=message)
