"""Benchmark: how long the live job view takes to answer on a large live session.

A session of N jobs is made by the real core (create, one or two polls each; a quarter cacheable,
one in seven left running), written by the real store, with the tracker's copies on the board as
the addon leaves them. Then each request is answered by the view's app as the addon's worker
thread does (median of the rounds), with the database and without one (`pollwatch_db` empty).

    .venv/bin/python scripts/bench_live_view.py [--jobs 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pollwatch.core.tracking import Tracker
from pollwatch.live.app import ViewApp
from pollwatch.live.board import Board
from pollwatch.live.data import LiveData
from pollwatch.store.database import Session, Store

API = "http://api.test:8080"


def build(db: Path, jobs: int) -> tuple[str, Board]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers import Traffic  # the test suite's timeline builder: exchanges on a simple clock

    session = Session(source="bench")
    tracker, board = Tracker(key_prefix=session.id + "/"), Board()
    traffic = Traffic(tracker)
    with Store(db, session) as store:
        for i in range(jobs):
            url, state = f"{API}/api/exports/e-{i}", "succeeded" if i % 7 else "running"
            for update in (traffic.exchange("POST", f"{API}/api/exports", 202, body={"id": f"e-{i}", "status": "queued"},
                                            headers={"Location": url}),
                           traffic.poll(state, url, cache="max-age=30" if i % 4 == 0 else "no-store",
                                        body={"id": f"e-{i}", "status": state})):
                store.submit(update)
                board.note(tracker.jobs[update.job.key])
    return session.id, board


def median_ms(app: ViewApp, target: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        reply = app.respond("GET", target)
        times.append(time.perf_counter() - began)
        assert reply.status == 200, reply.text[:300]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pollwatch-bench-live-") as tmp:
        db = Path(tmp) / "live.sqlite"
        began = time.perf_counter()
        session, board = build(db, args.jobs)
        print(f"{args.jobs} jobs made in {time.perf_counter() - began:.1f} s")
        targets = ["/api/jobs", f"/api/jobs?offset={args.jobs // 2}", f"/api/jobs?offset={args.jobs - 50}",
                   "/api/jobs?q=e-999", "/api/jobs?code=status-cacheable", "/api/jobs?state=running", "/api/findings",
                   "/"]
        for label, path in (("database + tracker", str(db)), ("tracker only", None)):
            app = ViewApp(LiveData(board, session, path))
            app.respond("GET", "/api/jobs")  # the first answer learns which jobs are written
            for target in targets:
                print(f"{label:20} {target:34} {median_ms(app, target, args.rounds):7.1f} ms")
        app = ViewApp(LiveData(board, session, str(db)))
        key = app.respond("GET", "/api/jobs?limit=1").json()["jobs"][0]["key"]
        print(f"{'database + tracker':20} {'/api/jobs/KEY':34} {median_ms(app, '/api/jobs/' + key, args.rounds):7.1f} ms")


if __name__ == "__main__":
    main()
