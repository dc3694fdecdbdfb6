"""Fixtures of the test suite: rule timelines on the core and through the addon, the sample API and
a real mitmdump. Plain helpers live in helpers.py."""

from __future__ import annotations

import pytest
from mitmproxy.test import taddons

from helpers import LIVE_TIMING, AddonTraffic, Traffic
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
    """A real mitmdump with pollwatch, one per test module; `proxy.db` is its SQLite file."""
    db = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]) / "live.sqlite"
    with ProxyProcess(db) as process:
        yield process


