"""Rows as the database stores them: every text cell made safe (core/redact.py), nested values as
JSON. Made in the writer thread for every poll, so cells pollwatch filled itself are passed by."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pollwatch.core.findings import Finding
from pollwatch.core.records import JobSnapshot, PollRecord, Transition, items
from pollwatch.core.redact import CELL_KEPT_LENGTH, VALIDATORS, safe_cell, safe_value
from pollwatch.core.worker import WorkerEvent

_PLAIN = frozenset({int, float, bool})
"""Cell types with nothing to make safe."""
_OWN_WORDS = frozenset({"session_id", "job_key", "kind", "matched_by", "state", "cache_verdict",
                        "served_by", "body_sha256", "created_by", "reference_source", "last_state", "terminal_state",
                        "from_state", "to_state"})
"""Columns pollwatch fills with its own words (keys it made, its state and verdict names, hashes),
never with text from the traffic: nothing in them to redact, and they come with every poll."""


def jsonable(row: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A row, given as (column, value) pairs, ready for SQLite: every text made safe
    (core/redact.py), nested values as JSON."""
    out: dict[str, Any] = {}
    for key, value in row:
        if value is None or value.__class__ in _PLAIN or key in _OWN_WORDS:
            pass
        elif isinstance(value, str):
            if key not in VALIDATORS:
                value = safe_cell(value)
        elif isinstance(value, dict | list):
            value = json_cell(key, value)
        out[key] = value
    return out


def json_cell(key: str, value: dict[str, Any] | list[Any]) -> str:
    """A nested value as the JSON text of column `key`, every string in it made safe. Most are
    empty, or the same few short texts again with every poll (`{"cache-control": "no-store"}`, a
    job's states), so the JSON of one holding only short strings is remembered."""
    if not value:
        return "{}" if isinstance(value, dict) else "[]"
    is_dict = isinstance(value, dict)
    if is_dict:
        parts: tuple[Any, ...] = tuple(value.items())
        texts = [text for pair in parts for text in pair]
    else:
        parts = tuple(value)
        texts = list(parts)
    # Only strings (1, 1.0 and True are equal keys to a cache, and their JSON differs), and only
    # short ones (a header of a megabyte must not stay in memory after its row is written).
    if all(t.__class__ is str for t in texts) and sum(map(len, texts)) <= CELL_KEPT_LENGTH:
        return _json_kept(key, is_dict, parts)
    return _json(key, value)


def _json(key: str, value: dict[str, Any] | list[Any]) -> str:
    return json.dumps(safe_value(value, key), sort_keys=True)


@lru_cache(maxsize=4096)
def _json_kept(key: str, is_dict: bool, parts: tuple[Any, ...]) -> str:
    return _json(key, dict(parts) if is_dict else list(parts))


def job_row(job: JobSnapshot, session_id: str) -> dict[str, Any]:
    return jsonable(items(job)) | {"session_id": session_id}


def poll_row(poll: PollRecord, session_id: str) -> dict[str, Any]:
    return jsonable(items(poll)) | {"session_id": session_id}


def transition_row(transition: Transition, session_id: str) -> dict[str, Any]:
    return jsonable(items(transition)) | {"session_id": session_id}


def finding_row(finding: Finding, session_id: str) -> dict[str, Any]:
    row = jsonable(finding.model_dump().items())
    row["severity"] = finding.severity.value
    return row | {"session_id": session_id}


def worker_event_row(event: WorkerEvent, session_id: str, job_key: str | None = None) -> dict[str, Any]:
    """A worker event as stored: only the fields the join and the rules need, bounded, redacted."""
    row = jsonable(event.model_dump().items())
    row["state"] = event.state.value if event.state else None
    return row | {"session_id": session_id, "job_key": job_key}
