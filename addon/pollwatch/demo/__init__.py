"""Sample asynchronous job API, shared cache and httpx pollers used by ``pollwatch demo``.

Everything listens on 127.0.0.1 only and behaves deterministically, so the same
scenarios serve the demo, the end-to-end tests and recorded sample sessions.
"""

from pollwatch.demo.api import SampleAPI
from pollwatch.demo.cache import SharedCache
from pollwatch.demo.clients import ClientOptions, PollOutcome, poll_job, poll_status
from pollwatch.demo.contracts import CONTRACTS
from pollwatch.demo.jobs import FAULTS, Phase, Timing
from pollwatch.demo.scenarios import SCENARIOS, Scenario, run_scenario

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
