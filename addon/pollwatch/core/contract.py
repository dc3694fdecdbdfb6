"""A job contract: what each asynchronous endpoint family of an API does, written down.

One model serves two purposes. Written by `pollwatch contract infer` from recordings and kept in
review, it is what `contract check` compares new recordings with, so a release that changes a
state word, the status URL, a creation status code or the cache headers on status responses is
caught before clients are. Edited by hand, it teaches pollwatch an API its built-in rules miss:
`recognition()` turns it into the settings `Config` holds (state and outcome fields, words,
templates, id fields, status headers), the same settings the one-by-one options name.

Pure: the YAML file is read and written outside the core (`pollwatch.contract_file`).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pollwatch.core.documents import looks_like_id
from pollwatch.core.references import ID_FIELDS, REFERENCE_HEADERS
from pollwatch.core.states import DEFAULT_STATE_FIELDS, TERMINAL, State
from pollwatch.core.urls import path_segments, split

StateName = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired", "unknown"]
TerminalName = Literal["succeeded", "failed", "cancelled", "expired"]
INTERNAL_SOURCES = frozenset({"none", "body", "request-url", "request-target", "late-binding", "back-reference",
                              "discovered", "poll"})
"""Reference sources that are not a response header: how pollwatch found the job, not where."""
ABSENT = "(absent)"
"""In `cache_headers`: some status responses did not carry the header."""
VARIES = "*"
"""In `cache_headers`: the header is present and its value differs per response (ETag, Age)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error naming its line


class Creation(_Strict):
    """How jobs of the family are created."""

    method: str
    path: str = Field(description="Create path, id-like segments as {id}")
    hosts: list[str] = Field(default_factory=list, description="Origins the creations were sent to")
    status: list[int] = Field(default_factory=list, description="Status codes answering a creation")

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


class Reference(_Strict):
    """Where a creating response names its job."""

    id_from: list[str] = Field(default_factory=list, description="body.<field>, status-url or poll-url")
    status_url_from: list[str] = Field(default_factory=list, description="a header name or body.<link path>")


class StatusUrl(_Strict):
    hosts: list[str] = Field(default_factory=list, description="Origins the status was read from")
    templates: list[str] = Field(default_factory=list, description="Status paths, the job id as {id}; "
                                 "`?name` lists query parameters")

    @field_validator("templates")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for text in value:
            if not text.startswith("/"):
                raise ValueError(f"status URL template {text!r} must be a path starting with /")
        return value


class StateReading(_Strict):
    fields: list[str] = Field(default_factory=list, description="Dotted JSON paths the state is read from")
    outcome_fields: list[str] = Field(default_factory=list, description="Fields that decide a final phase")
    signals: list[str] = Field(default_factory=list, description="Other sources: status-code, done, stored-copy")
    words: dict[str, StateName] = Field(default_factory=dict, description="Every word seen -> its state")
    terminal: list[TerminalName] = Field(default_factory=list, description="Terminal states seen")


class StatusResponses(_Strict):
    codes: list[int] = Field(default_factory=list)
    cache_headers: dict[str, list[str]] = Field(default_factory=dict)
    retry_after: list[int] = Field(default_factory=list, description="Retry-After seconds seen (rounded)")


class Family(_Strict):
    """Jobs created the same way (method and path) and read the same way."""

    name: str
    create: Creation | None = None
    reference: Reference = Field(default_factory=Reference)
    status_url: StatusUrl = Field(default_factory=StatusUrl)
    state: StateReading = Field(default_factory=StateReading)
    status_responses: StatusResponses = Field(default_factory=StatusResponses)

    @property
    def key(self) -> str:
        """What matches a family across contracts: method and generalised create path, else the
        generalised first status template, else the name."""
        if self.create is not None:
            return f"{self.create.method} {generalise(self.create.path)}"
        if self.status_url.templates:
            return f"polled {generalise(self.status_url.templates[0])}"
        return self.name


class Contract(_Strict):
    version: Literal[1] = 1
    families: list[Family] = Field(default_factory=list)

    def recognition(self) -> dict[str, Any]:
        """The contract as recognition settings (the fields of `Config` of the same names). What
        the built-in rules already know is left out, so that a contract inferred from traffic
        changes nothing when it is fed back: only what a person added teaches something."""
        out: dict[str, list[str]] = {"templates": [], "state_fields": [], "outcome_fields": [], "id_fields": [],
                                     "status_headers": []}
        states: dict[str, str] = {}
        for family in self.families:
            out["templates"] += [t for t in (s.partition("?")[0] for s in family.status_url.templates) if "{id}" in t]
            out["state_fields"] += [f for f in family.state.fields if f not in DEFAULT_STATE_FIELDS]
            out["outcome_fields"] += family.state.outcome_fields
            states |= {word: state for word, state in family.state.words.items() if state != State.UNKNOWN.value}
            out["id_fields"] += [f for f in (p.removeprefix("body.") for p in family.reference.id_from
                                             if p.startswith("body.")) if f not in ID_FIELDS]
            out["status_headers"] += [h for h in family.reference.status_url_from
                                      if h.lower() not in INTERNAL_SOURCES and not h.startswith("body")
                                      and h.lower() not in REFERENCE_HEADERS]
        return {name: list(dict.fromkeys(values)) for name, values in out.items()} | {"states": states}


# --- shapes ------------------------------------------------------------------------------------

def path_template(url: str) -> str:
    """A create path with id-like segments as {id}: `/v2/2ab8.../volumes` -> `/v2/{id}/volumes`."""
    return "/" + "/".join("{id}" if looks_like_id(s) else s for s in path_segments(url))


def status_template(url: str, job_ids: set[str]) -> str:
    """A status URL's path with the job's id as {id} (other segments as written), then the query
    parameter names (`name={id}` where the value is the job's id), sorted."""
    segments = path_segments(url)
    path = "/" + "/".join("{id}" if s in job_ids else s for s in segments)
    query = parse_qsl(split(url).query, keep_blank_values=True)
    names = sorted({f"{k}={{id}}" if v in job_ids else k for k, v in query})
    return path + (f"?{'&'.join(names)}" if names else "")


def generalise(template: str) -> str:
    """The shape two templates are compared by: other id-like segments (a subscription, a tenant,
    a placeholder someone wrote) count as one placeholder `{*}`."""
    path, sep, query = template.partition("?")
    segments = [s if s == "{id}" else "{*}" if (s.startswith("{") and s.endswith("}")) or looks_like_id(s) else s
                for s in path.split("/") if s]
    return "/" + "/".join(segments) + (sep + query if sep else "")


# --- drift -------------------------------------------------------------------------------------

class Drift(BaseModel):
    """One way recorded traffic differs from the contract."""

    family: str
    aspect: str
    change: str


def _listed(values: list[Any] | set[Any]) -> str:
    return ", ".join(str(v) for v in sorted(values, key=str)) or "none"


def compare(contract: Contract, observed: Contract) -> list[Drift]:
    """Every difference that breaks a client written against `contract`: a family it does not
    describe, a new or vanished state word, a new terminal state, a new status URL shape or
    host, a new creation status code, changed cache headers on status responses. A family the
    recordings do not exercise is not drift (a recording may test a part of the API)."""
    known = {f.key: f for f in contract.families}
    drift: list[Drift] = []
    for family in observed.families:
        expected = known.get(family.key)
        if expected is None:
            drift.append(Drift(family=family.name, aspect="family", change="an endpoint family the contract does not "
                               f"describe (status {_listed(family.status_url.templates)})"))
            continue
        drift += [Drift(family=expected.name, aspect=a, change=c) for a, c in _family_drift(expected, family)]
    return drift


def _family_drift(want: Family, got: Family) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def new(aspect: str, what: str, seen: list[Any], allowed: list[Any], *, key: Any = None) -> None:
        norm = key or (lambda v: v)
        extra = sorted({v for v in seen if norm(v) not in {norm(a) for a in allowed}}, key=str)
        if extra:
            out.append((aspect, f"new {what} {_listed(extra)} (contract: {_listed(allowed)})"))

    if want.create is not None and got.create is not None:
        new("creation status code", "status code", got.create.status, want.create.status)
        new("host", "creation host", got.create.hosts, want.create.hosts)
    new("host", "status host", got.status_url.hosts, want.status_url.hosts)
    new("status URL shape", "status URL", got.status_url.templates, want.status_url.templates, key=generalise)
    new("reference", "job id source", got.reference.id_from, want.reference.id_from)
    new("reference", "status URL source", got.reference.status_url_from, want.reference.status_url_from)
    new("state source", "state source", got.state.fields + got.state.outcome_fields + got.state.signals,
        want.state.fields + want.state.outcome_fields + want.state.signals)
    for word, state in sorted(got.state.words.items()):
        if word not in want.state.words:
            out.append(("state word", f"new word {word!r} (-> {state})"))
        elif want.state.words[word] != state:
            out.append(("state word", f"word {word!r} now reads as {state} (contract: {want.state.words[word]})"))
    out += [("state word", f"vanished word {word!r} (-> {state})")
            for word, state in sorted(want.state.words.items()) if word not in got.state.words]
    unlisted = sorted(set(got.state.terminal) - set(want.state.terminal))
    if unlisted:
        out.append(("terminal state", f"terminal state {_listed(unlisted)} not in the contract's "
                                      f"terminal set ({_listed(want.state.terminal)})"))
    new("status code", "status response code", got.status_responses.codes, want.status_responses.codes)
    out += _cache_drift(want.status_responses, got.status_responses)
    return out


def _cache_drift(want: StatusResponses, got: StatusResponses) -> list[tuple[str, str]]:
    """Cache headers are compared when the recordings hold a status response that is no error
    (errors carry their own headers, and say nothing about how a status is cached)."""
    out: list[tuple[str, str]] = []
    if not any(code < 400 for code in got.codes):
        return out
    for name in sorted(set(want.cache_headers) | set(got.cache_headers)):
        before, after = want.cache_headers.get(name, [ABSENT]), got.cache_headers.get(name, [ABSENT])
        if set(before) != set(after):
            out.append(("cache headers", f"{name} on status responses: {_listed(after)} (contract: {_listed(before)})"))
    if bool(want.retry_after) != bool(got.retry_after):
        now = f"sent ({_listed(got.retry_after)} s)" if got.retry_after else "no longer sent"
        out.append(("retry-after", f"Retry-After on status responses {now}"))
    return out


def terminal_names(states: set[str]) -> list[str]:
    """The terminal ones of some canonical state names, in lifecycle order."""
    return [s.value for s in State if s in TERMINAL and s.value in states]
