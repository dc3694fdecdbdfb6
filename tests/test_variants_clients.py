"""The sample API's clients against the failure variants of recordings/healthy.flows, through the
module `pollwatch regress` writes (its one function filled in here) and the `pollwatch_variant`
fixture: the healthy httpx client passes every variant; each faulty demo client fails the variant
that exposes it, with the right finding. Real mitmdump server replay, real httpx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import RECORDINGS
from pollwatch.testing.regress import FILL_IN_END, FILL_IN_START

pytest_plugins = ["pytester"]

HEALTHY = RECORDINGS / "healthy.flows"
POLLWATCH = str(Path(sys.executable).with_name("pollwatch"))

RUN_CLIENT = '''
def run_client(base_url: str, proxy_url: str, ca_bundle: str) -> str | None:
    import ssl

    import httpx
    from pollwatch.demo import SCENARIOS, poll_job

    scenario = SCENARIOS[{scenario!r}]
    trust = ssl.create_default_context(cafile=ca_bundle)
    with httpx.Client(proxy=proxy_url, verify=trust, trust_env=False, timeout=10) as client:
        outcome = poll_job(client, SCENARIOS["healthy"].create_url(base_url), **scenario.client.status_kwargs())
    if outcome.final_state is None and outcome.seen and outcome.seen[-1][0] == 410:
        return "expired"
    return outcome.final_state or (outcome.states[-1] if outcome.states else None)
'''


def regress_module(pytester, *cases: str) -> Path:
    """`pollwatch regress` into the pytester folder (slow kept short: 12 waiting polls)."""
    module = pytester.path / "test_async_contract.py"
    args = [POLLWATCH, "regress", str(HEALTHY), "-o", str(module), "--slow-polls", "12"]
    subprocess.run([*args, *(a for c in cases for a in ("--case", c))], check=True, capture_output=True)
    return module


def fill_in(module: Path, scenario: str) -> None:
    text = module.read_text()
    filled = re.sub(re.escape(FILL_IN_START) + ".*?" + re.escape(FILL_IN_END),
                    RUN_CLIENT.format(scenario=scenario), text, flags=re.S)
    assert filled != text
    module.write_text(filled)


def test_the_unfilled_module_fails_every_case_pointing_at_the_function_to_fill_in(pytester):
    regress_module(pytester, "failed")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NotImplementedError: fill in run_client() in *test_async_contract.py*"])


def test_the_healthy_client_passes_every_variant(pytester):
    fill_in(regress_module(pytester), "healthy")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


@pytest.mark.parametrize(("scenario", "case", "code"), [
    ("gives-up", "slow", "polling-abandoned"),
    ("ignores-terminal", "failed", "poll-after-terminal"),
    ("too-fast", "slow", "poll-too-fast"),
])
def test_a_faulty_client_fails_the_variant_that_exposes_it(pytester, scenario, case, code):
    fill_in(regress_module(pytester, case), scenario)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*pollwatch: * finding(s) during this test (variant {case}*",
                                 f"* {code} job e-1001: *"])


def test_a_client_that_never_talks_to_the_variant_fails_saying_so(pytester):
    module = regress_module(pytester, "cached")
    module.write_text(re.sub(re.escape(FILL_IN_START) + ".*?" + re.escape(FILL_IN_END),
                             "def run_client(base_url, proxy_url, ca_bundle):\n    return 'succeeded'\n",
                             module.read_text(), flags=re.S))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*variant cached: the client never created job e-1001*"])
