"""The pytest plugin's `pollwatch_proxy` fixture, run the way a user runs it: pytester writes a test
module, pytest runs it in a subprocess (the plugin loads through the package's `pytest11` entry
point), real mitmdump, the real sample API and a real httpx client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CLIENT = '''
import httpx
import pytest
from pollwatch.demo import SCENARIOS, poll_job
from pollwatch.demo.api import SampleAPI, Timing


def run(proxy_url, scenario, trust_env=False):
    with SampleAPI(timing=Timing(queued_s=0.2, running_s=0.4)) as api, \\
            httpx.Client(proxy=proxy_url, trust_env=trust_env, timeout=10) as client:
        return poll_job(client, SCENARIOS[scenario].create_url(api.url), **SCENARIOS[scenario].client.status_kwargs())
'''


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for its (exited) parent's reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_a_healthy_client_passes(pytester):
    pytester.makepyfile(CLIENT + '''
def test_export(pollwatch_proxy):
    assert run(pollwatch_proxy.url, "healthy").final_state == "succeeded"
    assert [j["terminal_state"] for j in pollwatch_proxy.jobs()] == ["succeeded"]
    assert pollwatch_proxy.findings() == []
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_client_reading_a_cacheable_status_fails_with_the_finding_and_its_fix(pytester):
    pytester.makepyfile(CLIENT + '''
def test_export(pollwatch_proxy):
    assert run(pollwatch_proxy.url, "cached-status").final_state == "succeeded"
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*warning status-cacheable job e-*: status response is explicitly fresh*",
                                 "*fix: Send `Cache-Control: no-store`*",
                                 "*allow it: @pytest.mark.pollwatch(allow=*'status-cacheable'*"])


def test_an_allowed_finding_passes(pytester):
    pytester.makepyfile(CLIENT + '''
@pytest.mark.pollwatch(allow=["status-cacheable"])
def test_export(pollwatch_proxy):
    run(pollwatch_proxy.url, "cached-status")
    assert {f["code"] for f in pollwatch_proxy.findings()} == {"status-cacheable"}
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_min_severity_error_lets_warnings_pass(pytester):
    pytester.makepyfile(CLIENT + '''
@pytest.mark.pollwatch(min_severity="error")
def test_export(pollwatch_proxy):
    run(pollwatch_proxy.url, "cached-status")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_an_unknown_code_in_the_marker_is_named(pytester):
    pytester.makepyfile('''
import pytest
@pytest.mark.pollwatch(allow=["status-cachable"])
def test_export(pollwatch_proxy):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown finding code(s) status-cachable*"])


@pytest.mark.parametrize("raised", ["RuntimeError('boom')", "KeyboardInterrupt()"])
def test_the_proxy_is_stopped_when_a_test_raises(pytester, tmp_path, raised):
    pid_file = tmp_path / "pid"
    pytester.makepyfile(f'''
def test_export(pollwatch_proxy):
    open({str(pid_file)!r}, "w").write(str(pollwatch_proxy.pid))
    raise {raised}
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    pid = int(pid_file.read_text())
    assert gone(pid), f"mitmdump {pid} outlived the test run"


def test_https_gets_the_ca_bundle_of_the_proxy(pytester):
    pytester.makepyfile('''
def test_ca(pollwatch_proxy):
    text = pollwatch_proxy.ca_bundle.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    assert pollwatch_proxy.ca_bundle.parent != __import__("pathlib").Path.home() / ".mitmproxy"
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_pollwatch_flag_checks_each_test_through_one_shared_proxy(pytester):
    pytester.makepyfile(CLIENT + '''
import os

def test_healthy():
    assert run(None, "healthy", trust_env=True).final_state == "succeeded"

def test_cached():
    run(None, "cached-status", trust_env=True)

def test_no_traffic():
    assert os.environ["HTTP_PROXY"].startswith("http://127.0.0.1:")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--pollwatch")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*_ test_cached _*", "*warning status-cacheable job e-*", "*= pollwatch =*",
                                 "*::test_healthy: 1 job(s), 0 finding(s)*",
                                 "*::test_cached: 1 job(s), 1 finding(s)*", "*warning status-cacheable job e-*",
                                 "FAILED *::test_cached*"])


def test_without_its_fixtures_the_plugin_starts_nothing_and_imports_little():
    code = ("import sys, pollwatch.testing.plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('pollwatch.', 'mitmproxy', 'pydantic'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}).stdout.strip()
    assert loaded == "['pollwatch.testing', 'pollwatch.testing.plugin']"


def test_tests_that_do_not_ask_for_pollwatch_never_load_the_rest_of_it(pytester):
    pytester.makepyfile('''
import sys

def test_one():
    pass

def test_two():
    assert not [m for m in sys.modules if m.startswith(("pollwatch.testing.proxy", "pollwatch.store", "mitmproxy"))]
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "= pollwatch =" not in result.stdout.str()


def test_a_proxy_asked_for_with_getfixturevalue_is_checked_too(pytester):
    pytester.makepyfile(CLIENT + '''
def test_export(request):
    run(request.getfixturevalue("pollwatch_proxy").url, "cached-status")
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*warning status-cacheable job e-*"])


@pytest.mark.parametrize(("marker", "named"), [
    ('alow=["status-cacheable"]', "alow"),
    ('"status-cacheable"', "positional"),
    ('always=["status-cacheable"]', "always"),
    ('min_severity="fatal"', "min_severity"),
])
def test_a_marker_argument_the_plugin_does_not_take_fails_the_test_naming_it(pytester, marker, named):
    pytester.makepyfile(f'''
import pytest
@pytest.mark.pollwatch({marker})
def test_export(pollwatch_proxy):
    pass
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*@pytest.mark.pollwatch: *{named}*"])
