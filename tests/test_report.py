"""`pollwatch report`: one self-contained HTML file per database, built from real recordings (and
a 2,000-job capture made by the real core), checked as text and as rendered by headless Chromium."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from pollwatch.cli.app import main

from pollwatch.sources.analysis import analyze_recordings
from pollwatch.core.findings import CATALOGUE
from pollwatch.report.data import CACHEABLE, CACHED_BY
from pollwatch.report.page import DEFAULT_FULL, HEALTHY_LISTED, write_report

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "recordings"
SCENARIOS = ("etag-stuck", "shared-cache", "cached-status", "healthy", "lost-id", "gives-up", "wrong-env")
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-gpu", "--disable-quic", "--disable-sync"]


def _bench_module():
    """scripts/bench_report.py builds the large capture; the test uses the same generator."""
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "scripts" / "bench_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, Path]:
    """One database per scenario recording, plus `all` holding them together."""
    folder = tmp_path_factory.mktemp("report-dbs")
    dbs = {name: folder / f"{name}.sqlite" for name in SCENARIOS}
    for name, db in dbs.items():
        analyze_recordings([RECORDINGS / f"{name}.flows"], db)
    dbs["all"] = folder / "all.sqlite"
    analyze_recordings([RECORDINGS / f"{name}.flows" for name in SCENARIOS], dbs["all"])
    return dbs


@pytest.fixture(scope="module")
def big_report(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("report-big")
    db = folder / "big.sqlite"
    _bench_module().build_database(db, 2000)
    out = folder / "big.html"
    write_report(db, out)
    return db, out.read_text()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("POLLWATCH_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make(db: Path, tmp_path: Path, **options) -> str:
    out = tmp_path / f"{db.stem}.html"
    write_report(db, out, **options)
    return out.read_text()


class Links(HTMLParser):
    """Every id and every href/src in a page, and the tags used."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src", "xlink:href") and value is not None:
                self.refs.append((tag, name, value))


def rows(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_report_is_self_contained(recorded, tmp_path):
    page = make(recorded["all"], tmp_path)
    links = Links(page)
    assert [r for r in links.refs if not r[2].startswith("#")] == []
    assert {"script", "link", "img", "iframe", "object"}.isdisjoint(links.tags)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", page)


def test_every_finding_code_links_to_its_reference_entry(recorded, tmp_path):
    page = make(recorded["all"], tmp_path)
    links = Links(page)
    codes = {code for (code,) in rows(recorded["all"], "select distinct code from findings")}
    assert {"status-not-modified", "etag-reused-across-states", "stale-status", "unknown-job"} <= codes
    for code in codes:
        assert ("a", "href", f"#code-{code}") in links.refs, code
        entry = page.split(f'id="code-{code}"', 1)[1].split("</dd><dt", 1)[0]
        assert html.escape(CATALOGUE[code].meaning) in entry and "Fix:" in entry, code
    dangling = {value for _, _, value in links.refs if value[1:] not in links.ids}
    assert dangling == set()


def test_untrusted_database_text_is_escaped(recorded, tmp_path):
    db = tmp_path / "evil.sqlite"
    shutil.copy(recorded["etag-stuck"], db)
    with sqlite3.connect(db) as conn:
        conn.execute("update jobs set status_url = 'http://x/<script>alert(1)</script>', job_id = '\"><marquee>id'")
        conn.execute("update polls set url = 'http://x/?q=<script>alert(2)</script>'")
        conn.execute("update findings set message = '<img src=x onerror=alert(3)>'")
        conn.execute("update findings set code = 'evil\"><script>alert(4)</script>' where code = 'status-not-modified'")
    page = make(db, tmp_path)
    assert "<script" not in page and "<img" not in page and "<marquee>id" not in page
    for text in ("http://x/<script>alert(1)</script>", "<img src=x onerror=alert(3)>", '"><marquee>id',
                 "http://x/?q=<script>alert(2)</script>"):
        assert html.escape(text) in page, text
    assert {"script", "img", "marquee"}.isdisjoint(Links(page).tags)


def test_large_capture_draws_only_the_worst_jobs_in_full(big_report):
    db, page = big_report
    assert page.count('<section class="job"') == DEFAULT_FULL
    (flagged,) = rows(db, "select count(distinct job_key) from findings where job_key is not null")[0]
    assert flagged > DEFAULT_FULL
    assert f"{flagged - DEFAULT_FULL} more job(s) with findings, not drawn" in page
    drawn = page.split('<section id="jobs">', 1)[1].split("more job(s) with findings", 1)[0]
    assert drawn.count('class="code error"') > 0  # errors come first
    assert len(page.encode()) < 2_000_000


def test_large_capture_collapses_healthy_jobs_into_a_table_of_the_newest(big_report):
    db, page = big_report
    healthy_ids = [job_id for (job_id,) in rows(db, "select job_id from jobs where key not in "
                                               "(select job_key from findings where job_key is not null) "
                                               "order by created_at, key")]
    assert len(healthy_ids) > HEALTHY_LISTED
    section = page.split('<section id="healthy">', 1)[1].split("</section>", 1)[0]
    assert section.startswith("<details>") and "<svg" not in section
    assert f"Healthy jobs ({len(healthy_ids)})" in section
    older = len(healthy_ids) - HEALTHY_LISTED
    assert f"{older} older healthy job(s) are not" in section
    assert all(f"<code>{job_id}</code>" in section for job_id in healthy_ids[-HEALTHY_LISTED:])
    assert not any(f"<code>{job_id}</code>" in section for job_id in healthy_ids[:older])


def test_a_job_with_too_many_polls_is_thinned_but_keeps_its_state_changes(recorded, tmp_path, monkeypatch):
    monkeypatch.setattr("pollwatch.report.page.MAX_MARKS", 6)
    db = recorded["healthy"]
    page = make(db, tmp_path)
    ((polls,),) = rows(db, "select count(*) from polls")
    svg = page.split('<svg class="timeline" viewBox="0 0 1200 138"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="poll ') + svg.count('class="create ') == 6
    assert f"6 of {polls} exchanges drawn (repeated polls thinned)" in svg
    for (state,) in rows(db, "select to_state from transitions"):
        assert f"poll mark s-{state}" in svg or f"create s-{state}" in svg, state


def test_cli_writes_the_report_and_says_so(recorded, tmp_path):
    out = tmp_path / "incident.html"
    result = CliRunner().invoke(main, ["report", "--db", str(recorded["lost-id"]), "-o", str(out), "--job", "e-100x"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 1 job(s)" in result.output
    page = out.read_text()
    assert "e-100x" in page and ">e-1001<" not in page


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "missing.sqlite"], "missing.sqlite: no such database"),
    (["--session", "nope"], "no session 'nope'"),
    (["--job", "zzz"], "no job id starts with 'zzz'"),
])
def test_cli_errors_are_one_line(recorded, tmp_path, args, message):
    base = ["--db", str(recorded["healthy"]), "-o", str(tmp_path / "r.html")]
    result = CliRunner().invoke(main, ["report", *base + args])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_foreign_database_is_refused_in_one_line(tmp_path):
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table customers (id int)")
    result = CliRunner().invoke(main, ["report", "--db", str(db), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "not a pollwatch database" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --- rendered in a real browser ---------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (scripts/test installs the Debian package 'chromium'); "
                    "skipping the rendered-report tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def expected_marks(db: Path, key: str) -> dict[str, int]:
    """What the database says the job's picture must show."""
    polls = rows(db, "select served_by, cache_verdict from polls where job_key = ? and kind = 'poll'", key)
    return {
        "svg .poll": len(polls),
        "svg .poll.cached": sum(s in CACHED_BY for s, _ in polls),
        "svg .poll.cacheable": sum(s not in CACHED_BY and v in CACHEABLE for s, v in polls),
        "svg .create": len(rows(db, "select 1 from polls where job_key = ? and kind = 'create'", key)),
        "svg .transition": len(rows(db, "select 1 from transitions where job_key = ?", key)),
        "svg .finding": len(rows(db, "select 1 from findings where job_key = ?", key)),
    }


@pytest.mark.parametrize("scenario", ["etag-stuck", "shared-cache", "healthy"])
def test_rendered_timeline_shows_every_poll_cache_hit_and_finding(browser, recorded, tmp_path, artifacts, scenario):
    db = recorded[scenario]
    out = tmp_path / f"report-{scenario}.html"
    write_report(db, out)
    ((key, terminal),) = rows(db, "select key, terminal_state from jobs")
    expected = expected_marks(db, key)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(out.resolve().as_uri())
        page.screenshot(path=str(artifacts / f"report-{scenario}.png"), full_page=True)
        job = page.locator(f'section.job[data-key="{key}"]')
        shown = {selector: job.locator(selector).count() for selector in expected}
        badge = job.locator("svg .terminal text").text_content()
        timeline = job.locator("svg.timeline").bounding_box()
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    finally:
        page.close()
    assert shown == expected
    assert badge == terminal
    assert timeline is not None and timeline["width"] > 1000 and not overflow
    if scenario == "etag-stuck":
        assert expected["svg .poll.cached"] >= 10  # the 304s
    if scenario == "shared-cache":
        assert expected["svg .poll.cached"] > 0 and expected["svg .finding"] >= 3
    if scenario == "healthy":
        assert expected["svg .finding"] == 0 and expected["svg .poll.cached"] == 0
