"""The plugin with one shared proxy (`pollwatch_scope = session`): a finding belongs to the test
that owns its job, also when it is raised later (a timer, or the capture's end)."""

from __future__ import annotations

import pytest
from test_plugin_proxy import CLIENT

pytest_plugins = ["pytester"]

GIVES_UP = CLIENT.replace("running_s=0.4", "running_s=3") + '''
def test_a_gives_up(pollwatch_proxy):
    run(pollwatch_proxy.url, "gives-up")
'''


def test_a_shared_proxy_does_not_blame_a_later_test_for_an_earlier_tests_job(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npollwatch_scope = session\n")
    pytester.makepyfile(GIVES_UP + '''
def test_b_innocent(pollwatch_proxy):
    import time
    time.sleep(4)  # the polling-abandoned timer of test_a's job fires now
    assert pollwatch_proxy.findings() == []
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_shared_proxy_reports_a_late_finding_for_the_test_owning_the_job_and_fails_the_run(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npollwatch_scope = session\n")
    pytester.makepyfile(GIVES_UP)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*late finding(s) of *::test_a_gives_up*",
                                 "*warning polling-abandoned job e-1001*"])
