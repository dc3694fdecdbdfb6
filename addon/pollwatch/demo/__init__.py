"""Sample asynchronous job API, shared cache and httpx pollers used by ``pollwatch demo``.

Everything listens on 127.0.0.1 only and behaves deterministically, so the same
scenarios serve the demo, the end-to-end tests and recorded sample sessions.
"""

from pollwatch.demo.api import CONTRACTS, FAULTS, Phase, SampleAPI, Timing
from pollwatch.demo.cache import SharedCache
from pollwatch.demo.clients import (
    SCENARIOS,
    ClientOptions,
    PollOutcome,
    Scenario,
    poll_job,
    poll_status,
    run_scenario,
)

__all__ = [
    "CONTRACTS",
    "FAULTS",
    "SCENARIOS",
    "ClientOptions",
    "Phase",
    "PollOutcome",
    "SampleAPI",
    "Scenario",
    "SharedCache",
    "Timing",
    "poll_job",
    "poll_status",
    "run_scenario",
]
