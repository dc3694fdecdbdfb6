"""User settings for the core, independent of where they came from (mitmproxy options, a contract
file, tests).

Recognition settings (templates, state and outcome fields, state words, id fields, status
headers) form one model: a contract file and the options that name them one by one
(`pollwatch_templates`, `pollwatch_states`, ...) both add to the same lists, so the options are
shorthands for a contract, never a second mechanism.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from pollwatch.core.contract import Contract
from pollwatch.core.references import Template
from pollwatch.core.states import DEFAULT_STATE_FIELDS, State, Vocabulary

RECOGNITION_LISTS = ("id_fields", "status_headers", "templates", "state_fields", "outcome_fields")


class Config(BaseModel):
    id_fields: list[str] = Field(default_factory=list, description="Extra JSON fields naming a job id")
    status_headers: list[str] = Field(default_factory=list, description="Extra headers carrying a status URL")
    templates: list[str] = Field(default_factory=list, description="Status-URL templates like /v1/jobs/{id}")
    state_fields: list[str] = Field(default_factory=list, description="Extra dotted JSON paths of the state")
    outcome_fields: list[str] = Field(default_factory=list, description="Extra dotted JSON paths of the outcome "
                                      "that decides a final phase (run.conclusion beside run.status)")
    states: dict[str, str] = Field(default_factory=dict, description="Extra state words: word -> canonical state")
    id_headers: list[str] = Field(default_factory=list, description="Extra request/operation id headers")
    abandon_after: float = Field(60.0, gt=0, description="Seconds without a poll before polling-abandoned")
    abandon_intervals: float = Field(5.0, gt=0, description="...or this many expected poll intervals")
    abandon_floor: float = Field(2.0, ge=0, description="Never call polling abandoned sooner than this")
    stuck_after: float = Field(300.0, gt=0, description="Seconds in one non-terminal state before stuck-non-terminal")
    stale_date_after: float = Field(5.0, ge=0, description="Date older than arrival by this many seconds is stale")
    keep_bodies: bool = Field(False, description="Store response body excerpts (off: bodies may hold secrets)")
    max_jobs: int = Field(20000, gt=0, description="Jobs kept in memory; the oldest finished ones go first")

    @field_validator("states")
    @classmethod
    def _known_states(cls, value: dict[str, str]) -> dict[str, str]:
        for word, state in value.items():
            if not word.strip():
                raise ValueError("a state word is empty")
            if state.strip().lower() not in {s.value for s in State} - {State.UNKNOWN.value}:
                raise ValueError(f"state word {word!r} maps to {state!r}, not one of queued, running, "
                                 "succeeded, failed, cancelled, expired")
        return value

    @field_validator("templates")
    @classmethod
    def _valid_templates(cls, value: list[str]) -> list[str]:
        for text in value:
            Template.parse(text)
        return value

    @classmethod
    def parse_state_pairs(cls, pairs: list[str]) -> dict[str, str]:
        """`WORD=STATE` strings (as given to --set) as a mapping."""
        out: dict[str, str] = {}
        for pair in pairs:
            word, sep, state = pair.partition("=")
            if not sep or not word.strip():
                raise ValueError(f"expected WORD=STATE, got {pair!r}")
            out[word.strip()] = state.strip()
        return out

    @classmethod
    def from_contract(cls, contract: Contract | None = None, **settings: Any) -> "Config":
        """Settings from a contract merged with the same settings given one by one: lists are
        united (contract first), and a state word given directly wins over the contract's."""
        learnt = contract.recognition() if contract is not None else {}
        merged = dict(settings)
        for name in RECOGNITION_LISTS:
            merged[name] = list(dict.fromkeys([*learnt.get(name, []), *settings.get(name, [])]))
        merged["states"] = {**learnt.get("states", {}), **settings.get("states", {})}
        return cls(**merged)

    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.states, outcome_fields=self.outcome_fields)

    def all_state_fields(self) -> tuple[str, ...]:
        return (*self.state_fields, *DEFAULT_STATE_FIELDS)
