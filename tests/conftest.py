"""Fixtures of the test suite: rule timelines on the core and through the addon, the sample API and
a real mitmdump. Plain helpers live in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from helpers import CHROMIUM, LIVE_TIMING, AddonTraffic, Traffic, launch_chromium
from pollwatch.core.tracking import Tracker
from pollwatch.demo.api import SampleAPI
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.mitm.addon import PollWatch


@pytest.fixture(params=["core", "addon"])
def traffic(request):
    """Rule tests run twice: on the pure core, and through the mitmproxy addon."""
    if request.param == "core":
        yield Traffic(Tracker())
        return
    addon = PollWatch()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, pollwatch_db="")
        yield AddonTraffic(addon)


@pytest.fixture(scope="module")
def api():
    """The sample job API on loopback, one per test module."""
    with SampleAPI(timing=LIVE_TIMING) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, request):
    """A real mitmdump with pollwatch, one per test module; `proxy.db` is its SQLite file. A module
    sets `PROXY_OPTIONS` (`--set` values) to run it with options."""
    db = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "live.sqlite"
    with ProxyProcess(db, options=list(getattr(request.module, "PROXY_OPTIONS", []))) as process:
        yield process


@pytest.fixture(scope="module")
def browser(proxy):
    """Headless Chromium through the module's proxy (skips when Chromium or Playwright is missing;
    scripts/test installs both)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/test installs the Debian package 'chromium')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p, CHROMIUM, proxy.url)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: $POLLWATCH_ARTIFACTS when set (CI keeps it), else the test's tmp dir."""
    folder = Path(os.environ.get("POLLWATCH_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


