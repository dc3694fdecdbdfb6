"""pollwatch's pytest plugin (entry point `pytest11`): fixtures that put a test's HTTP client
behind a watching proxy or in front of a failure variant, and a verdict after each such test.

pytest loads this module in every run of an environment where pollwatch is installed, this
project's own suite included: it imports only pytest and the standard library, and starts
nothing until a test asks for a fixture (or `--pollwatch` is given).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pollwatch.testing.proxy import ProxyForTest, ServedVariant, WatchedProxy, Window
    from pollwatch.testing.verdict import Policy

MARKER = ("pollwatch(allow=[codes], min_severity='warning'): findings pollwatch may raise in this test "
          "without failing it, and the least severity that fails it")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
PLUGIN = pytest.StashKey["Plugin"]()
VIEW = pytest.StashKey["ProxyForTest"]()
SERVER = pytest.StashKey["VariantServer"]()
"""What the fixtures gave a test, however it asked for them (argument or getfixturevalue)."""
STARTED = pytest.StashKey[tuple[float, int]]()
"""When a test's setup began, and how much the shared proxy had printed by then."""


class Plugin:
    """One pytest run: every proxy started (all stopped at the end, on errors and Ctrl-C too),
    the shared one, and what each test saw (for the summary)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started: list[WatchedProxy] = []
        self.shared: WatchedProxy | None = None
        self.seen: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self.windows: dict[str, tuple[Window, Policy]] = {}
        """Each test checked against the shared proxy: when it ran, and its marker's policy."""
        self.counted: set[tuple[Any, ...]] = set()
        """Shared-proxy findings a test's check already saw."""
        self.late: dict[str, list[dict[str, Any]]] = {}
        self._saved_env: dict[str, str | None] = {}

    @property
    def everything(self) -> bool:
        return bool(self.config.getoption("pollwatch"))

    @property
    def mitmproxy_options(self) -> list[str]:
        """`pollwatch_mitmproxy_options` (ini): mitmproxy `name=value` options for every proxy."""
        options = [line.strip() for line in self.config.getini("pollwatch_mitmproxy_options") if line.strip()]
        for option in options:
            if "=" not in option:
                raise pytest.UsageError(f"pollwatch_mitmproxy_options: {option!r} is not name=value")
        return options

    def start(self, folder: Path) -> WatchedProxy:
        from pollwatch.testing.proxy import WatchedProxy

        proxy = WatchedProxy(folder, options=self.mitmproxy_options)
        self.started.append(proxy)
        return proxy.start()

    def shared_proxy(self) -> WatchedProxy:
        if self.shared is None:
            self.shared = self.start(Path(tempfile.mkdtemp(prefix="pollwatch-")))
        return self.shared

    def serve(self, directory: Path, name: str, folder: Path, extra: str) -> ServedVariant:
        from pollwatch.testing.proxy import ServedVariant

        served = ServedVariant(directory, name, folder, extra=extra, options=self.mitmproxy_options)
        self.started.append(served.proxy)
        return served.start()

    def route_everything(self) -> None:
        """--pollwatch: clients that honour HTTP(S)_PROXY go through the shared proxy."""
        proxy = self.shared_proxy()
        for name in PROXY_VARIABLES:
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = proxy.url

    def final_check(self) -> dict[str, list[dict[str, Any]]]:
        """Stop the shared proxy (its capture end raises polling-abandoned for jobs still open) and
        keep the failing findings no test's check saw, by the test that owns their job."""
        from pollwatch.testing.proxy import late_findings

        if self.shared is None or not self.windows:
            return {}
        self.shared.stop()
        jobs, findings = self.shared.read(None)
        late = late_findings(findings, jobs, {n: w for n, (w, _) in self.windows.items()}, self.counted)
        self.late = {n: failing for n, found in late.items() if (failing := self.windows[n][1].failing(found))}
        return self.late

    def close(self) -> None:
        for proxy in self.started:
            proxy.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()


class VariantServer:
    """The `pollwatch_variant` fixture: `pollwatch_variant("cached")` serves that variant."""

    def __init__(self, plugin: Plugin, folder: Path, default: Path | None) -> None:
        self.plugin, self.folder, self.default = plugin, folder, default
        self.served: list[ServedVariant] = []

    def __call__(self, name: str, *, directory: str | Path | None = None, extra: str = "kill") -> ServedVariant:
        """Serve variant `name` from `directory` (default: the `pollwatch_variants` ini option);
        `extra` is what a request outside the recording gets (kill, forward or a status code)."""
        folder = Path(directory) if directory is not None else self.default
        if folder is None:
            raise pytest.UsageError("pollwatch_variant: pass directory= or set the pollwatch_variants ini option "
                                    "(a folder written by `pollwatch variants RECORDING -o DIR`)")
        served = self.plugin.serve(folder, name, self.folder / f"{name}-{len(self.served)}", extra)
        self.served.append(served)
        return served

    def stop(self) -> None:
        for served in self.served:
            served.proxy.stop()


# --- hooks --------------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pollwatch", "pollwatch: asynchronous job polling checks")
    group.addoption("--pollwatch", action="store_true", default=False,
                    help="run every test through one pollwatch proxy (HTTP_PROXY/HTTPS_PROXY set) and fail "
                         "tests during which pollwatch raised a finding at warning or above")
    parser.addini("pollwatch_scope", "lifetime of the pollwatch_proxy fixture's proxy: function (one per test, "
                  "the default) or session (one shared proxy)", default="function")
    parser.addini("pollwatch_variants", "folder the pollwatch_variant fixture serves from (written by "
                  "`pollwatch variants RECORDING -o DIR`), relative to the rootdir", default="")
    parser.addini("pollwatch_mitmproxy_options", "mitmproxy options for pollwatch's proxies, one name=value a line "
                  "(e.g. ssl_verify_upstream_trusted_ca=tests/ca.pem for a local HTTPS test server)",
                  type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.stash[PLUGIN] = Plugin(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    plugin = session.config.stash[PLUGIN]
    if plugin.everything:
        plugin.route_everything()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Late findings of the shared proxy fail the run (the tests they belong to have already
    passed); the terminal summary lists them."""
    if session.config.stash[PLUGIN].final_check() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(PLUGIN, None)
    if plugin is not None:
        plugin.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    shared = item.config.stash[PLUGIN].shared
    item.stash[STARTED] = (time.time(), shared.output_mark() if shared is not None else 0)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    if call.when != "call":
        return
    report = outcome.get_result()
    if not (item.config.stash[PLUGIN].everything or VIEW in item.stash or SERVER in item.stash):
        return  # a test that did not ask for pollwatch costs nothing
    try:
        text = _verdict(item)
    except Exception as exc:  # noqa: BLE001 - a broken check must say so, not hide the test's result
        text = f"pollwatch could not check this test: {exc}"
    if text is None:
        return
    if report.passed:
        report.outcome, report.longrepr = "failed", text
    else:
        report.sections.append(("pollwatch", text))


def _verdict(item: pytest.Item) -> str | None:
    """The failure text for this test's findings, or None; what it saw goes to the summary."""
    from pollwatch.testing.proxy import Window, identity
    from pollwatch.testing.verdict import Policy, failure_text

    plugin = item.config.stash[PLUGIN]
    marker = item.get_closest_marker("pollwatch")
    policy = Policy.of_marker(marker.args, marker.kwargs) if marker else Policy()
    started, mark = item.stash.get(STARTED, (time.time(), 0))
    window = Window(started).close()
    checks: list[tuple[str, WatchedProxy, Window | None, Policy]] = []
    server = item.stash.get(SERVER, None)
    served_by: dict[WatchedProxy, ServedVariant] = {}
    for served in server.served if server is not None else []:
        served_by[served.proxy] = served
        served.proxy.stop()  # capture end: a client that stopped early is now polling-abandoned
        checks.append((f"variant {served.name}", served.proxy, None, policy.for_variant(served.case.codes)))
    view = item.stash.get(VIEW, None)
    if view is not None and view.window is None:
        view.proxy.stop()
        checks.append(("pollwatch_proxy", view.proxy, None, policy))
    elif (view is not None or plugin.everything) and plugin.shared is not None:
        plugin.shared.settle(mark)
        checks.append(("shared proxy", plugin.shared, window, policy))
        plugin.windows[item.nodeid] = (window, policy)
    texts, jobs, findings = [], [], []
    for label, proxy, scope, rule in checks:
        seen_jobs, seen = proxy.read(scope)
        jobs += seen_jobs
        findings += seen
        variant = served_by.get(proxy)
        if variant is not None and (why := variant.missing_traffic(seen_jobs)):
            texts.append(why)
        plugin.counted |= {identity(f) for f in seen}
        failing = rule.failing(seen)
        if failing:
            texts.append(failure_text(label, failing, rule, str(proxy.db)))
    if jobs or findings:
        plugin.seen[item.nodeid] = (jobs, findings)
    return "\n\n".join(texts) or None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from pollwatch.testing.verdict import describe

    plugin = terminalreporter.config.stash.get(PLUGIN, None)
    if plugin is None or not (plugin.seen or plugin.late):
        return
    terminalreporter.section("pollwatch")
    for nodeid, (jobs, findings) in plugin.seen.items():
        terminalreporter.write_line(f"{nodeid}: {len(jobs)} job(s), {len(findings)} finding(s)")
        for job in jobs:
            terminalreporter.write_line(f"    job {job['job_id']}: {' → '.join(job['states']) or '-'}")
        for f in findings:
            terminalreporter.write_line(f"    {f['severity']:<7} {f['code']} job {f['job_id'] or '-'}")
    for nodeid, late in plugin.late.items():
        terminalreporter.write_line(f"FAILED: {len(late)} late finding(s) of {nodeid} (its job, raised after the "
                                    "test ended; the run fails):", red=True)
        terminalreporter.write_line(describe(late))


# --- fixtures -----------------------------------------------------------------------------------

def _proxy_scope(config: pytest.Config) -> str:
    scope = "session" if config.getoption("pollwatch") else config.getini("pollwatch_scope")
    if scope not in ("function", "session"):
        raise pytest.UsageError(f"pollwatch_scope must be function or session, not {scope!r}")
    return scope


@pytest.fixture
def pollwatch_proxy(request: pytest.FixtureRequest) -> Iterator[ProxyForTest]:
    """mitmdump + pollwatch on a free loopback port: `.url` (the proxy), `.ca_bundle` (trust it for
    HTTPS), `.db`, `.jobs()` and `.findings()` of this test. One per test, or one for the run with
    `pollwatch_scope = session` (ini) or `--pollwatch`. After the test, findings at warning or
    above fail it unless `@pytest.mark.pollwatch(allow=[...])` or `min_severity="error"` says so."""
    from pollwatch.testing.proxy import ProxyForTest, Window

    plugin = request.config.stash[PLUGIN]
    if _proxy_scope(request.config) == "session":
        view = ProxyForTest(plugin.shared_proxy(), Window(request.node.stash.get(STARTED, (None, 0))[0]))
        request.node.stash[VIEW] = view
        yield view
        return
    proxy = plugin.start(request.getfixturevalue("tmp_path") / "pollwatch")
    request.node.stash[VIEW] = ProxyForTest(proxy, None)
    try:
        yield request.node.stash[VIEW]
    finally:
        proxy.stop()


@pytest.fixture
def pollwatch_variant(request: pytest.FixtureRequest) -> Iterator[VariantServer]:
    """`pollwatch_variant("cached")` serves that failure variant (server replay, pollwatch
    watching): run your client against `.base_url` through `.proxy_url`, then
    `.check_final_state(state)`. The test fails on any client-side finding (poll-after-terminal,
    polling-abandoned, poll-too-fast, ...) and on other findings the variant does not carry."""
    configured = request.config.getini("pollwatch_variants")
    default = request.config.rootpath / configured if configured else None
    server = VariantServer(request.config.stash[PLUGIN], request.getfixturevalue("tmp_path") / "variants", default)
    request.node.stash[SERVER] = server
    try:
        yield server
    finally:
        server.stop()
