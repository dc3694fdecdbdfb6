"""Benchmark: the query commands (`jobs`, `warnings`, `show`, `report`) on a big database.

The database is built with `pollwatch analyze` from scripts/bench_analyze.py's generated flow
files (N jobs x 10 polls, cached under /tmp/pollwatch-bench). Each command runs as a user runs it
(a subprocess; wall time, median of the rounds), against `pollwatch sessions` on the same database
as the baseline (process start-up and opening the database), interleaved. Then every SQL
statement each command ran is captured in-process (sqlite3 trace callback) and its
`EXPLAIN QUERY PLAN` checked: a full scan of polls, jobs, transitions or findings is flagged.
Bytes per poll row: the database file over the number of poll rows (and polls' own pages, when
SQLite has the dbstat table).

    .venv/bin/python scripts/bench_queries.py [--jobs 10000] [--rounds 3] [--faulty 10]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyze import CACHE, generate  # noqa: E402

from pollwatch.store.views import VIEWS, ensure_views  # noqa: E402

BIG_TABLES = ("polls", "jobs", "transitions", "findings")
VIEW_SQL = "\n".join(VIEWS.values())


def commands(db: Path, job: str, out: Path) -> dict[str, list[str]]:
    return {
        "sessions (baseline)": ["sessions", "--db", str(db)],
        "jobs": ["jobs", "--db", str(db)],
        "jobs --format json": ["jobs", "--db", str(db), "--format", "json"],
        "jobs --stuck": ["jobs", "--db", str(db), "--stuck"],
        "warnings": ["warnings", "--db", str(db)],
        "warnings --format json": ["warnings", "--db", str(db), "--format", "json"],
        "show": ["show", job, "--db", str(db)],
        "report": ["report", "--db", str(db), "-o", str(out)],
    }


def wall(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("pollwatch")), *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def statements(argv: list[str]) -> list[str]:
    """Every distinct SQL statement the command ran (run in this process, traced)."""
    from pollwatch.cli.app import main

    seen: dict[str, None] = {}
    connect = sqlite3.connect

    def traced(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(lambda sql: seen.setdefault(sql.strip(), None))
        return conn

    sqlite3.connect = traced  # type: ignore[assignment]
    try:
        CliRunner().invoke(main, argv, catch_exceptions=False)
    finally:
        sqlite3.connect = connect  # type: ignore[assignment]
    return [s for s in seen if s.lower().startswith(("select", "with"))]


def full_scans(db: Path, sql: str) -> list[str]:
    """The plan's lines that read a big table (or a view over one) without an index: by name, or
    by the alias the views give them (`jobs j`, `polls p`, `findings f`)."""
    with sqlite3.connect(db) as conn:
        ensure_views(conn, temporary=True)  # the views as this pollwatch defines them, as its commands see them
        try:
            plan = [row[-1] for row in conn.execute("explain query plan " + sql, _dummy_args(sql))]
        except sqlite3.Error as exc:
            return [f"(not explained: {exc})"]
    aliases = {alias for table in BIG_TABLES for alias in re.findall(rf"\b{table}\s+(?:as\s+)?([a-z])\b", sql + VIEW_SQL)}
    big = (*BIG_TABLES, *VIEWS, *aliases)
    return [line for line in plan if line.startswith(("SCAN", "MATERIALIZE")) and "USING" not in line
            and line.split()[1] in big]


def _dummy_args(sql: str) -> list[object] | dict[str, object]:
    if ":" in sql and "?" not in sql:
        return {}
    return [None] * sql.count("?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--faulty", type=int, default=0, help="every FAULTY-th job gets a finding (0: none)")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    name = f"jobs{args.jobs}x{args.polls}" + (f"-faulty{args.faulty}" if args.faulty else "")
    files = generate(CACHE / f"{name}.f1", args.jobs, args.polls, 1, args.faulty)
    db = CACHE / f"{name}.sqlite"
    if not db.exists():
        print(f"building {db} with pollwatch analyze ...", flush=True)
        subprocess.run([str(Path(sys.executable).with_name("pollwatch")), "analyze", *map(str, files), "--db", str(db)],
                       check=True, stdout=subprocess.DEVNULL)
    with sqlite3.connect(db) as conn:
        polls = conn.execute("select count(*) from polls").fetchone()[0]
        jobs = conn.execute("select count(*) from jobs").fetchone()[0]
        job = conn.execute("select job_id from jobs order by created_at limit 1 offset ?", [jobs // 2]).fetchone()[0]
        try:
            poll_bytes = conn.execute("select sum(pgsize) from dbstat where name = 'polls'").fetchone()[0]
        except sqlite3.Error:
            poll_bytes = None
    size = db.stat().st_size
    print(f"database: {jobs} jobs, {polls} poll rows, {size / 1e6:.0f} MB: {size / polls:.0f} bytes per poll row "
          f"(whole file){f', {poll_bytes / polls:.0f} in the polls table itself' if poll_bytes else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        argvs = commands(db, job, Path(tmp) / "report.html")
        times: dict[str, list[float]] = {name: [] for name in argvs}
        for _ in range(args.rounds):  # interleaved: each round runs every command once
            for name, argv in argvs.items():
                times[name].append(wall(argv))
        base = statistics.median(times["sessions (baseline)"])
        print(f"{'command':<22} {'wall s':>7} {'x baseline':>10}  plan")
        for name, argv in argvs.items():
            ran = statements(argv)
            scans = sorted({line for sql in ran for line in full_scans(db, sql)})
            median = statistics.median(times[name])
            print(f"{name:<22} {median:>7.2f} {median / base:>10.2f}  {len(ran)} statement(s): "
                  f"{'; '.join(scans) or 'no full scan of a big table'}", flush=True)
    print(f"medians of {args.rounds} interleaved rounds; baseline = `pollwatch sessions` (start-up + open)")


if __name__ == "__main__":
    main()
