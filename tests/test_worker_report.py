"""`pollwatch report` with worker logs: the worker's lane on each job's time axis, its end, the
gap to the client's later non-terminal polls, and its transitions beside the client's."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import database_with_worker_log
from pollwatch.cli.app import main

MARKUP = "<script>alert('worker')</script>"
EVENTS = (  # shared-cache's e-1001: the client reads a cached `queued` until about +1.4 s
    (0.05, {"status": "job.running", "msg": "<i>picked</i> up"}),
    (0.5, {"state": "succeeded", "msg": f"{MARKUP} done", "operation_id": "<b>op-1</b>"}),
)


def _report(db: Path, out: Path) -> str:
    result = CliRunner().invoke(main, ["report", "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> str:
    """The report of shared-cache with a worker log that ends the job before the cache lets go."""
    directory = tmp_path_factory.mktemp("worker-report")
    return _report(database_with_worker_log(directory, "shared-cache", "e-1001", EVENTS), directory / "report.html")


def _job_svg(page: str) -> str:
    return re.search(r'<svg class="timeline"[^>]*aria-label="timeline of job e-1001".*?</svg>', page, re.S).group(0)


def test_the_timeline_has_a_worker_lane_with_a_mark_per_event(page):
    svg = _job_svg(page)
    assert 'class="lane worker"' in svg
    assert len(re.findall(r'<rect class="worker mark ', svg)) == len(EVENTS)


def test_each_worker_mark_carries_its_state_word_and_its_message_as_text(page):
    svg = _job_svg(page)
    assert 'class="worker mark s-running"' in svg and "worker running · +0.05 s" in svg
    assert '<text class="worker-word"' in svg and ">running</text>" in svg
    assert "&lt;i&gt;picked&lt;/i&gt; up</title>" in svg


def test_the_workers_terminal_event_is_drawn_as_its_end(page):
    svg = _job_svg(page)
    assert 'class="worker mark s-succeeded end"' in svg
    assert 'class="worker-end"' in svg and "the worker logged succeeded at +0.5 s" in svg
    assert ">worker: succeeded</text>" in svg


def test_the_gap_to_the_clients_later_non_terminal_polls_is_shaded(page):
    gap = re.search(r'<rect class="behind"[^>]*><title>([^<]*)</title>', _job_svg(page))
    assert gap and re.search(r"client behind the worker: \d+ non-terminal answer\(s\) over .* after the worker "
                             r"logged succeeded", gap.group(1))


def test_the_timeline_makes_room_for_the_worker_lane(page):
    assert 'viewBox="0 0 1200 166"' in _job_svg(page)


def test_the_job_section_lists_the_workers_transitions_next_to_the_clients(page):
    table = re.search(r'<table class="transitions">.*?</table>', page, re.S).group(0)
    assert "<th>client saw</th><th>worker logged</th>" in table
    assert re.search(r"\+0\.05 s</td><td></td><td>start → <span[^>]*>running</span> "
                     r'<span class="muted">[^<]*worker.jsonl:1</span>', table)
    assert re.search(r"\+0\.5 s</td><td></td><td><span[^>]*>running</span> → <span[^>]*>succeeded</span>", table)
    assert re.search(r"\+0 s</td><td>start → <span[^>]*>queued</span></td><td></td>", table)


def test_the_job_section_says_how_long_the_client_stayed_behind_the_worker(page):
    assert re.search(r"the worker logged <span[^>]*>succeeded</span> at \+0\.5 s; <b class=\"behind\">the client "
                     r"was told a non-terminal state \d+ time\(s\) after that</b>", page)


def test_the_client_behind_worker_finding_is_shown_with_its_job(page):
    assert 'href="#code-client-behind-worker"' in page and 'id="code-client-behind-worker"' in page
    assert re.search(r"after the worker logged succeeded \([^)]*worker.jsonl:2\) and received queued", page)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)


def test_values_from_the_worker_log_are_html_escaped(page):
    parser = _Tags()
    parser.feed(page)
    assert not {"script", "i"} & parser.tags
    assert MARKUP not in page and "<b>op-1</b>" not in page and "job.running<i>" not in page
    assert "&lt;script&gt;alert(&#x27;worker&#x27;)&lt;/script&gt; done" in page
    assert "&lt;b&gt;op-1&lt;/b&gt;" in page


def test_the_legend_explains_the_worker_marks(page):
    legend = re.search(r'<section class="legend".*?</section>', page, re.S).group(0)
    assert "worker log event" in legend and "the worker&#x27;s end" in legend and "client behind the worker" in legend


def test_a_job_without_worker_events_has_no_worker_lane(tmp_path):
    db = tmp_path / "plain.sqlite"
    assert CliRunner().invoke(main, ["analyze", str(Path(__file__).parent.parent / "recordings" / "shared-cache.flows"),
                                     "--db", str(db)]).exit_code == 0
    svg = _job_svg(_report(db, tmp_path / "plain.html"))
    assert 'viewBox="0 0 1200 138"' in svg and "worker" not in svg
