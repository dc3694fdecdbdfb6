"""Inferring a job contract from what the core reports: the `Update`s of recorded traffic.

Jobs are grouped into endpoint families by how they were created (method and create path with
id-like segments as `{id}`, any host); a job found from its polls alone joins the family whose
status URL has its shape, else forms a family of its own. Everything is collected as sets and
written sorted, so the same traffic always gives the same contract, line for line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pollwatch.core.contract import (
    ABSENT, VARIES, Contract, Creation, Family, Reference, StateReading, StatusResponses, StatusUrl, generalise,
    path_template, status_template, terminal_names,
)
from pollwatch.core.documents import layers, scalar_id
from pollwatch.core.records import JobSnapshot, PollRecord, Update
from pollwatch.core.urls import origin_of, url_tokens

VALUED_CACHE_HEADERS = ("cache-control", "pragma", "vary", "cache-status", "x-cache", "x-cache-status",
                        "cf-cache-status")
"""Cache headers whose value is the policy (or the verdict of a cache): written as seen."""
PRESENT_CACHE_HEADERS = ("expires", "age", "etag", "last-modified", "x-cache-hits", "via")
"""Cache headers whose value differs per response: only their presence is part of the contract."""
SIGNALS = frozenset({"status-code", "stored-copy", "done"})
"""State sources that are not a body field: a status code, a 304's stored copy, Google's `done`."""


@dataclass
class _Seen:
    snapshot: JobSnapshot
    polls: list[PollRecord] = field(default_factory=list)
    create_document: Mapping[str, Any] | None = None


class ContractBuilder:
    """Collects updates (in the order the core gave them), then writes the contract they show.
    Creating responses are read for the field that holds the job id, so feed it a tracker that
    keeps bodies (`Config(keep_bodies=True)`); without them the id is said to come from the URL."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Seen] = {}

    @property
    def jobs(self) -> int:
        """Jobs seen so far."""
        return len(self._jobs)

    def add(self, update: Update) -> None:
        for each in update.all():
            if each.job is None:
                continue
            seen = self._jobs.get(each.job.key)
            if seen is None:
                seen = self._jobs[each.job.key] = _Seen(each.job)
            seen.snapshot = each.job
            if each.poll is None:
                continue
            if each.poll.kind == "create" and each.poll.body and seen.create_document is None:
                seen.create_document = _json_object(each.poll.body)
            seen.polls.append(replace(each.poll, body=None))

    def contract(self) -> Contract:
        groups: dict[str, list[_Seen]] = {}
        orphans = []
        for seen in self._jobs.values():
            job = seen.snapshot
            if job.create_method and job.create_url:
                groups.setdefault(f"{job.create_method} {path_template(job.create_url)}", []).append(seen)
            else:
                orphans.append(seen)
        shapes = {name: {generalise(t) for s in members for t in _templates(s)} for name, members in groups.items()}
        for seen in orphans:
            mine = {generalise(t) for t in _templates(seen)}
            home = next((name for name, known in sorted(shapes.items()) if mine & known), None)
            if home is None:
                home = f"polled {sorted(mine)[0] if mine else seen.snapshot.job_id}"
                shapes[home] = mine
            groups.setdefault(home, []).append(seen)
        return Contract(families=[_family(name, members) for name, members in sorted(groups.items())])


def infer(updates: Iterable[Update]) -> Contract:
    builder = ContractBuilder()
    for update in updates:
        builder.add(update)
    return builder.contract()


def _family(name: str, members: list[_Seen]) -> Family:
    created = [s for s in members if s.snapshot.create_method and s.snapshot.create_url]
    create = None
    if created:
        first = created[0].snapshot
        assert first.create_method is not None and first.create_url is not None
        create = Creation(method=first.create_method, path=path_template(first.create_url),
                          hosts=_sorted(origin_of(s.snapshot.create_url or "") for s in created),
                          status=_sorted(s.snapshot.create_status for s in created if s.snapshot.create_status))
    reference = Reference(id_from=_sorted(_id_source(s) for s in members),
                          status_url_from=_sorted(s.snapshot.reference_source for s in created
                                                  if s.snapshot.reference_source != "none"))
    polls = [p for s in members for p in s.polls if p.kind == "poll"]
    status_urls = [u for s in members for u in [s.snapshot.status_url, *(p.url for p in s.polls if p.kind == "poll")]
                   if u]
    status_url = StatusUrl(hosts=_sorted(origin_of(u) for u in status_urls),
                           templates=_sorted(t for s in members for t in _templates(s)))
    return Family(name=name, create=create, reference=reference, status_url=status_url,
                  state=_state(p for s in members for p in s.polls), status_responses=_responses(polls))


def _templates(seen: _Seen) -> list[str]:
    ids = {seen.snapshot.job_id}
    urls = [seen.snapshot.status_url, *(p.url for p in seen.polls if p.kind == "poll")]
    return [status_template(u, ids) for u in urls if u]


def _state(records: Iterable[PollRecord]) -> StateReading:
    fields, outcomes, signals, words, states = set(), set(), set(), {}, set()
    for record in records:
        if record.state is not None:
            states.add(record.state)
        if record.raw_state is None or record.state is None or record.state_source is None:
            continue
        if record.state_source in SIGNALS:
            signals.add(record.state_source)
            continue
        path, _, outcome = record.state_source.partition("+")
        fields.add(path)
        if outcome:
            outcomes.add(outcome)
        words[record.raw_state] = record.state
    return StateReading(fields=sorted(fields), outcome_fields=sorted(outcomes), signals=sorted(signals),
                        words=dict(sorted(words.items())), terminal=terminal_names(states))


def _responses(polls: list[PollRecord]) -> StatusResponses:
    answered = [p for p in polls if p.status is not None and p.status < 400]
    headers: dict[str, list[str]] = {}
    for name in (*VALUED_CACHE_HEADERS, *PRESENT_CACHE_HEADERS):
        values = {_cache_value(name, p.response_cache_headers[name]) if name in p.response_cache_headers else ABSENT
                  for p in answered}
        if values - {ABSENT}:
            headers[name] = sorted(values)
    return StatusResponses(codes=_sorted(p.status for p in polls if p.status is not None),
                           cache_headers=dict(sorted(headers.items())),
                           retry_after=_sorted(round(p.retry_after) for p in polls if p.retry_after is not None))


def _cache_value(name: str, value: str) -> str:
    if name in PRESENT_CACHE_HEADERS:
        return VARIES
    if name in ("cache-control", "pragma", "vary"):
        return ", ".join(sorted({d.strip().lower() for d in value.split(",") if d.strip()}))
    return (value.split() or [""])[0].upper()  # a cache's verdict: HIT, MISS, ... (not the cache's name)


def _id_source(seen: _Seen) -> str | None:
    """Where the creating response gave the job's id: a body field (`body.id`, `body.data`), else
    the status URL (`status-url`); None for a job whose creation was not seen."""
    job = seen.snapshot
    if job.created_by == "poll" or job.create_method is None:
        return None
    found = _id_field(seen.create_document, job.job_id) if seen.create_document is not None else None
    if found is not None:
        return f"body.{found}"
    return "status-url" if job.status_url and job.job_id in url_tokens(job.status_url) else "none"


def _id_field(document: Mapping[str, Any], job_id: str) -> str | None:
    """The dotted path (from the document or the object it wraps) of the field holding `job_id`:
    a top-level field first, then one in a nested object."""
    for layer in layers(document):
        for key, value in layer.items():
            text = scalar_id(value)
            if text == job_id or (key == "name" and text is not None and text.endswith(f"/{job_id}")):
                return str(key)
    for layer in layers(document):
        for key, value in layer.items():
            if isinstance(value, Mapping):
                inner = next((k for k, v in value.items() if scalar_id(v) == job_id), None)
                if inner is not None:
                    return f"{key}.{inner}"
    return None


def _json_object(text: str) -> Mapping[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _sorted(values: Iterable[Any]) -> list[Any]:
    return sorted({v for v in values if v is not None and v != ""}, key=lambda v: (str(type(v)), v))
