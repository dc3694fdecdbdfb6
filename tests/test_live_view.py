"""The live job view's app: its JSON API against the CLI's JSON (the same fields, the same values),
paging, filters and search, the timeline and support block of `pollwatch report`/`show`, escaping,
and the page itself. Real parts: jobs made by the real core, written by the real store into a
real SQLite file, the tracker's copies on the real board; requests go to the app as the addon
hands them over (method and raw target)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from helpers import API, Traffic
from pollwatch.cli.app import main
from pollwatch.core.tracking import Tracker
from pollwatch.live.app import MAX_LIMIT, ViewApp
from pollwatch.live.board import Board
from pollwatch.live.data import NO_DATABASE, NOT_WRITTEN, LiveData
from pollwatch.report.page import write_report
from pollwatch.store.database import Session, Store

OTHER = "http://other.test:9090"
MARKUP_ID = '<img id="planted-id" src="x">'
MARKUP_STATE = '<b id="planted-state">running</b>'
JOBS = 30


@dataclass
class Capture:
    """Jobs of one session: in `db` (written and closed) and on `board` (the tracker's copies)."""

    db: Path
    session: str
    board: Board
    traffic: Traffic

    def app(self, db: Path | None | str = "written") -> ViewApp:
        return ViewApp(LiveData(self.board, self.session, str(self.db) if db == "written" else db))

    def cli(self, *args: str) -> list[dict]:
        result = CliRunner().invoke(main, [*args, "--db", str(self.db), "--session", self.session, "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)


def job_exchanges(t: Traffic, i: int) -> list:
    """Job e-i: on two hosts, a quarter of them cacheable, four in five finished."""
    host = API if i % 3 else OTHER
    url, cache = f"{host}/api/exports/e-{i}", ("max-age=30" if i % 4 == 0 else "no-store")
    updates = [t.exchange("POST", f"{host}/api/exports", 202, body={"id": f"e-{i}", "status": "queued"},
                          headers={"Location": url}),
               t.poll("running", url, cache=cache, body={"id": f"e-{i}", "status": "running"})]
    if i % 5:
        updates.append(t.poll("succeeded", url, cache=cache, body={"id": f"e-{i}", "status": "succeeded"}))
    return updates


def planted_exchanges(t: Traffic) -> list:
    """A job whose id and state word are markup, as a hostile server could send them."""
    url = f"{API}/api/exports/{quote(MARKUP_ID, safe='')}"
    return [t.exchange("POST", f"{API}/api/exports", 202, body={"id": MARKUP_ID, "status": "queued"},
                       headers={"Location": url}),
            t.poll(None, url, body={"id": MARKUP_ID, "status": MARKUP_STATE})]


def feed(tracker: Tracker, board: Board, store: Store | None, updates: list) -> None:
    """What the addon does after each flow: the store gets the update, the board a copy of the job."""
    for update in updates:
        if update is None:
            continue
        if store is not None:
            store.submit(update)
        if update.job is not None:
            board.note(tracker.jobs[update.job.key])


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Capture:
    db = tmp_path_factory.mktemp("live-view") / "live.sqlite"
    session = Session(source="test")
    tracker, board = Tracker(key_prefix=session.id + "/"), Board()
    traffic = Traffic(tracker)
    with Store(db, session) as store:
        for i in range(JOBS):
            feed(tracker, board, store, job_exchanges(traffic, i))
        feed(tracker, board, store, planted_exchanges(traffic))
    return Capture(db, session.id, board, traffic)


def get(app: ViewApp, target: str):
    reply = app.respond("GET", target)
    assert reply.header("Cache-Control") == "no-store", target
    return reply


def listed(app: ViewApp, target: str = "/api/jobs?limit=500") -> list[dict]:
    reply = get(app, target)
    assert reply.status == 200, reply.text
    return reply.json()["jobs"]


def without_idle(rows: list[dict]) -> list[dict]:
    """Rows with `idle_seconds` dropped: for an unfinished job it counts up to now."""
    return [{k: v for k, v in r.items() if k != "idle_seconds"} for r in rows]


# --- the JSON API has the CLI's shapes ----------------------------------------------------------

def test_job_rows_are_the_rows_of_pollwatch_jobs_json_newest_first(capture):
    assert without_idle(listed(capture.app())) == without_idle(capture.cli("jobs")[::-1])


def test_finding_rows_are_the_rows_of_pollwatch_warnings_json_newest_first(capture):
    reply = get(capture.app(), "/api/findings?limit=500")
    assert reply.json()["findings"] == capture.cli("warnings")[::-1]
    assert {"status-cacheable", "unknown-state-word"} <= set(reply.json()["explanations"])


def test_a_job_the_database_does_not_hold_yet_is_shown_as_the_cli_will_show_it(capture):
    only_tracker = listed(capture.app(db=None))
    assert without_idle(only_tracker) == without_idle(capture.cli("jobs")[::-1])


def test_a_job_in_full_is_pollwatch_show_json_with_its_support_block_as_show_prints_it(capture):
    [job] = [r for r in capture.cli("jobs") if r["job_id"] == "e-4"]
    detail = get(capture.app(), "/api/jobs/" + job["key"]).json()
    shown = json.loads(CliRunner().invoke(main, ["show", job["key"], "--db", str(capture.db), "--format", "json"]).output)
    printed = CliRunner().invoke(main, ["show", job["key"], "--db", str(capture.db)]).output
    assert {k: detail[k] for k in shown} == shown
    assert detail["support_text"].startswith("job:            e-4  (key ")
    assert all(line in printed for line in detail["support_text"].splitlines())
    assert detail["explanations"]["status-cacheable"]["fix"].startswith("Send `Cache-Control: no-store`")


def test_the_timeline_is_the_very_drawing_of_pollwatch_report(capture, tmp_path):
    [job] = [r for r in capture.cli("jobs") if r["job_id"] == "e-8"]
    svg = get(capture.app(), "/api/jobs/" + job["key"]).json()["timeline_svg"]
    write_report(capture.db, tmp_path / "report.html")
    assert svg.startswith("<svg") and svg in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_job_only_the_tracker_knows_is_shown_without_timeline_saying_why(capture):
    key = listed(capture.app(db=None))[0]["key"]
    detail = get(capture.app(db=None), "/api/jobs/" + key).json()
    assert detail["job"]["key"] == key and detail["timeline_svg"] is None and detail["pending"] == NO_DATABASE


def test_an_unknown_job_is_404(capture):
    reply = get(capture.app(), "/api/jobs/no-such-session/1")
    assert reply.status == 404 and "no-such-session/1" in reply.json()["error"]


# --- the tracker and the database together ------------------------------------------------------

def test_jobs_not_written_yet_come_first_then_the_database_page(capture, tmp_path):
    session = Session(source="test")
    tracker, board = Tracker(key_prefix=session.id + "/"), Board()
    traffic = Traffic(tracker)
    with Store(tmp_path / "part.sqlite", session) as store:
        for i in range(4):
            feed(tracker, board, store, job_exchanges(traffic, i))
    for i in range(4, 6):  # seen by the tracker, not flushed yet
        feed(tracker, board, None, job_exchanges(traffic, i))
    data = ViewApp(LiveData(board, session.id, str(tmp_path / "part.sqlite")))
    body = get(data, "/api/jobs").json()
    assert [r["job_id"] for r in body["jobs"]] == ["e-5", "e-4", "e-3", "e-2", "e-1", "e-0"] and body["total"] == 6
    assert [r["job_id"] for r in listed(data, "/api/jobs?offset=1&limit=2")] == ["e-4", "e-3"]
    assert get(data, "/api/jobs/" + body["jobs"][0]["key"]).json()["pending"] == NOT_WRITTEN


def test_the_tracker_s_newer_state_shows_before_the_database_has_it(capture, tmp_path):
    session = Session(source="test")
    tracker, board = Tracker(key_prefix=session.id + "/"), Board()
    traffic = Traffic(tracker)
    with Store(tmp_path / "behind.sqlite", session) as store:
        feed(tracker, board, store, [traffic.create("/api/exports/e-1"), traffic.poll("running")])  # written
    feed(tracker, board, None, [traffic.poll("succeeded")])  # not written yet
    [row] = listed(ViewApp(LiveData(board, session.id, str(tmp_path / "behind.sqlite"))))
    assert row["last_state"] == "succeeded" and row["states"] == ["queued", "running", "succeeded"]
    assert row["polls"] == 2 and row["terminal_state"] == "succeeded" and row["idle_seconds"] is None


# --- paging, filters, search --------------------------------------------------------------------

def test_pages_cover_every_job_once_newest_first(capture):
    everything = [r["key"] for r in listed(capture.app())]
    pages = [get(capture.app(), f"/api/jobs?offset={o}&limit=7").json() for o in range(0, JOBS + 7, 7)]
    assert [k for page in pages for k in (r["key"] for r in page["jobs"])] == everything
    assert {page["total"] for page in pages} == {JOBS + 1}


@pytest.mark.parametrize("query, cli_options", [
    ("state=succeeded", ["--state", "succeeded"]),
    ("state=running", ["--state", "running"]),
    ("code=status-cacheable", ["--code", "status-cacheable"]),
    ("host=OTHER.test", ["--host", "OTHER.test"]),
    ("state=succeeded&host=other.test&code=status-cacheable",
     ["--state", "succeeded", "--host", "other.test", "--code", "status-cacheable"]),
])
def test_filters_mean_what_the_cli_options_of_that_name_mean(capture, query, cli_options):
    expected = [r["key"] for r in capture.cli("jobs", *cli_options)][::-1]
    assert expected, "the capture must hold jobs for this filter"
    for app in (capture.app(), capture.app(db=None)):
        assert [r["key"] for r in listed(app, f"/api/jobs?limit=500&{query}")] == expected


def test_search_finds_jobs_by_part_of_their_id(capture):
    for app in (capture.app(), capture.app(db=None)):
        assert [r["job_id"] for r in listed(app, "/api/jobs?q=E-2")] == ["e-29", "e-28", "e-27", "e-26", "e-25",
                                                                        "e-24", "e-23", "e-22", "e-21", "e-20", "e-2"]


def test_the_filters_offer_the_values_the_session_holds(capture):
    facets = get(capture.app(), "/api/jobs").json()["facets"]
    assert facets["hosts"] == {"http://api.test:8080": 21, "http://other.test:9090": 10}
    assert facets["codes"]["status-cacheable"] == 8 and facets["states"]["succeeded"] == 24


@pytest.mark.parametrize("target", ["/api/jobs?limit=0", f"/api/jobs?limit={MAX_LIMIT + 1}", "/api/jobs?offset=-1",
                                    "/api/jobs?limit=ten", "/api/findings?severity=fatal"])
def test_a_bad_parameter_is_400_naming_it(capture, target):
    reply = get(capture.app(), target)
    assert reply.status == 400 and re.search(r"limit|offset|severity", reply.json()["error"])


@pytest.mark.parametrize("target", ["/", "/api/jobs", "/api/findings", "/api/jobs/x/1", "/nothing", "/api/jobs?limit=x",
                                    "/favicon.ico"])
def test_every_reply_says_no_store(capture, target):
    get(capture.app(), target)  # asserts the header


def test_the_view_only_reads(capture):
    reply = capture.app().respond("POST", "/api/jobs")
    assert reply.status == 405 and reply.header("Allow") == "GET, HEAD"


# --- escaping and the page ----------------------------------------------------------------------

def test_markup_from_traffic_stays_text_in_json_and_escaped_in_the_timeline(capture):
    [planted] = [r for r in listed(capture.app()) if r["job_id"] == MARKUP_ID]
    reply = get(capture.app(), "/api/jobs/" + planted["key"])
    assert reply.header("Content-Type") == "application/json; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    detail = reply.json()
    assert detail["job"]["job_id"] == MARKUP_ID and MARKUP_STATE in detail["findings"][0]["message"]
    svg = detail["timeline_svg"]
    assert "<img" not in svg and "<b " not in svg
    assert "&lt;img id=&quot;planted-id&quot;" in svg and "&lt;b id=&quot;planted-state&quot;&gt;" in svg


def test_the_page_loads_nothing_from_elsewhere_and_runs_only_its_own_script(capture):
    reply = get(capture.app(), "/")
    page = reply.text
    [nonce] = set(re.findall(r'<script nonce="([^"]+)">', page))
    assert reply.header("Content-Security-Policy").startswith(f"default-src 'none'; script-src 'nonce-{nonce}';")
    assert not re.search(r"<(script|img|link|iframe)\b[^>]*\b(src|href)=", page)
    assert "://" not in page.replace("http://www.w3.org/2000/svg", "")  # a namespace name, never fetched
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_each_page_gets_its_own_nonce(capture):
    first, second = (get(capture.app(), "/").header("Content-Security-Policy") for _ in range(2))
    assert first != second


def test_the_view_copies_the_snapshot_the_tracker_made_for_each_flow():
    from mitmproxy.test import taddons

    from pollwatch.live.addon import LiveView
    from pollwatch.mitm.addon import PollWatch
    from test_addon_hooks import create_flow, make_flow

    watch = PollWatch()
    view = LiveView(watch)
    made = []
    watch.on_handled(lambda flow, update: made.append(update.job))
    with taddons.context(watch, view) as tctx:
        tctx.configure(watch, pollwatch_db="")
        flows = [create_flow(), *(make_flow("GET", "http://api.test/api/exports/e-1", 200,
                                            json.dumps({"id": "e-1", "status": state}),
                                            {"Content-Type": "application/json", "Cache-Control": "no-store"})
                                  for state in ("running", "running", "succeeded"))]
        for flow in flows:
            watch.response(flow)
            key = watch.job_key_of(flow)
            assert made[-1] is not None and view.board.get(key).job is made[-1]
            assert made[-1] == watch.tracker.jobs[key].snapshot()
        assert view.board.get(key).job.terminal_state == "succeeded"
        assert len(made) == len(flows)


def test_a_fault_after_the_tracker_handled_a_flow_does_not_keep_its_job_off_the_view():
    """The view is told first: an internal error later (here in the origin-check planner) is
    counted, and the job is on the board all the same."""
    from mitmproxy.test import taddons

    from pollwatch.live.addon import LiveView
    from pollwatch.mitm.addon import PollWatch
    from test_addon_hooks import create_flow

    def broken(*args) -> None:
        raise RuntimeError("a fault in pollwatch")

    watch = PollWatch()
    view = LiveView(watch)
    with taddons.context(watch, view) as tctx:
        tctx.configure(watch, pollwatch_db="")
        watch.verifier.consider = broken
        flow = create_flow()
        watch.response(flow)
        assert watch.internal_errors == 1 and view.board.get(watch.job_key_of(flow)) is not None
