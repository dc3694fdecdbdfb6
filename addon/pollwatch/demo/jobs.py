"""The sample API's job model: fault names, lifecycle, timing, per-job options, the job record,
and the Contract interface a job is served through.

Jobs move by wall-clock time since creation (``time.monotonic``): ``queued`` for
``Timing.queued_s``, then ``running`` for ``Timing.running_s``, then terminal.  A job names
its contract and a contract renders a job, so the Contract base class lives here next to
SampleJob; the concrete contracts (contracts.py) and the job API (api.py) both import this
module, and nothing imports back round a cycle.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from pollwatch.demo.server import Reply, not_found

__all__ = [
    "FAULTS",
    "Contract",
    "JobOptions",
    "Phase",
    "SampleJob",
    "Timing",
]

FAULTS: tuple[str, ...] = (
    "healthy",
    "cached-status",
    "cached-heuristic",
    "shared-cache",
    "etag-stuck",
    "replica-lag",
    "slow-then-fast",
    "expired",
    "missing",
    "failed",
    "flaky-5xx",
    "too-fast",
)
"""Server fault modes a job can be created with (``?fault=NAME``)."""


class Phase(Enum):
    """Contract-neutral lifecycle of a job; each contract renders its own words."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class Timing:
    """How long a job spends in each state; tests shrink it to stay fast."""

    queued_s: float = 0.3
    running_s: float = 0.9


@dataclass(frozen=True)
class JobOptions:
    """Per-job knobs read from the create request's query string."""

    fault: str = "healthy"
    ttl: int = 2
    """``shared-cache``: s-maxage in seconds."""
    lag: float = 0.6
    """``replica-lag``: how many seconds behind the replica is."""
    delay: float = 0.8
    """``slow-then-fast``: how long the 2nd status response is held back."""
    end: int = 303
    """``monitor`` contract: finish with a 303 redirect (default) or a 200 report."""

    @classmethod
    def from_query(cls, query: Mapping[str, list[str]]) -> JobOptions:
        """Parse ``fault``, ``ttl``, ``lag``, ``delay`` and ``end``; ValueError if invalid."""

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        fault = first("fault") or cls.fault
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        options = cls(fault=fault)
        if (ttl := first("ttl")) is not None:
            options = dataclasses.replace(options, ttl=int(ttl))
        if (lag := first("lag")) is not None:
            options = dataclasses.replace(options, lag=float(lag))
        if (delay := first("delay")) is not None:
            options = dataclasses.replace(options, delay=float(delay))
        if (end := first("end")) is not None:
            if end not in ("200", "303"):
                raise ValueError("end must be 200 or 303")
            options = dataclasses.replace(options, end=int(end))
        return options


@dataclass
class SampleJob:
    """One asynchronous job; mutable only through SampleAPI under its lock."""

    id: str
    contract: Contract
    options: JobOptions
    timing: Timing
    created: float
    """time.monotonic() at creation; drives the state machine."""
    created_wall: float
    """time.time() at creation; only used for Last-Modified."""
    started: float | None
    """Monotonic time the job leaves ``queued``; None while it waits for a trigger."""
    reads: int = 0
    """Status GETs answered so far (drives alternating/every-2nd faults)."""

    def phase(self, at: float) -> Phase:
        """State of the job as it was at monotonic time ``at``."""
        if self.started is None or at < self.started:
            return Phase.QUEUED
        if at < self.started + self.timing.running_s:
            return Phase.RUNNING
        return Phase.FAILED if self.options.fault == "failed" else Phase.SUCCEEDED


class Contract:
    """One URL family: how a job is created, polled and finished in that API style."""

    name: str
    id_prefix: str
    create_path: str
    status_route: re.Pattern[str]
    result_route: re.Pattern[str] | None = None

    def accepted(self, job: SampleJob, origin: str) -> Reply:
        """The 202 answer to the create request."""
        raise NotImplementedError

    def status(self, job: SampleJob, phase: Phase) -> Reply:
        """The answer to a status poll, without caching headers (faults add those)."""
        raise NotImplementedError

    def result(self, job: SampleJob, phase: Phase) -> Reply:
        """The finished resource, if this contract has a separate one."""
        return not_found()
