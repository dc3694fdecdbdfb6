"""The sample export page in headless Chromium against the `cached` variant of
recordings/healthy.flows: polling with fetch()'s default cache it freezes on the first (cacheable)
answer and fails; with `cache: 'no-store'` it reaches succeeded and passes. The job's traffic is
replayed by mitmproxy; only the page itself comes from the sample API on the recorded port."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import CHROMIUM, RECORDINGS
from pollwatch.testing.variants import derive

pytest_plugins = ["pytester"]

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (scripts/test installs the Debian package 'chromium')",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")

TESTS = Path(__file__).resolve().parent

PAGE_TEST = '''
import sys
sys.path.insert(0, {tests!r})

from playwright.sync_api import sync_playwright

from helpers import CHROMIUM, launch_chromium
from pollwatch.demo.api import SampleAPI


def test_export_page(pollwatch_variant):
    served = pollwatch_variant("cached", directory={variants!r}, extra="forward")
    with SampleAPI(port=18180), sync_playwright() as playwright:  # the page only; the job is replayed
        browser = launch_chromium(playwright, CHROMIUM, served.proxy_url)
        try:
            page = browser.new_page()
            page.goto(served.base_url + "/?fault=healthy&max_polls=15&every=100{cache}")
            page.wait_for_selector('body[data-done="true"]', state="attached", timeout=30_000)
            state = page.text_content("#state")
        finally:
            browser.close()
    served.check_final_state(state)
'''


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("variants")
    derive(str(RECORDINGS / "healthy.flows"), out, ["cached"])
    return out


def run_page(pytester, variants: Path, cache: str):
    pytester.makepyfile(PAGE_TEST.format(tests=str(TESTS), variants=str(variants), cache=cache))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_a_page_polling_with_the_default_fetch_cache_fails_the_cached_variant(pytester, variants):
    result = run_page(pytester, variants, "")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the client ended on 'queued', a correct client ends on 'succeeded'*",
                                 "*warning polling-abandoned job e-1001: capture ended before a terminal state*"])


def test_a_page_polling_with_cache_no_store_passes_the_cached_variant(pytester, variants):
    result = run_page(pytester, variants, "&cache=no-store")
    result.assert_outcomes(passed=1)
