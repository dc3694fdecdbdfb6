"""`pollwatch diff`: a failing job next to a known-good one, and where they first part ways.

The seed workflow ("diff the failing sample against a known-good sample") as one command: the
aspects are compared in the order an investigation checks them: status URL, host, cache headers,
status codes, state sequence, timing.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pollwatch.errors import DiffError
from pollwatch.core.references import Template
from pollwatch.core.urls import origin_of
from pollwatch.store.query import QueryError, list_worker_events, polls_behind_worker, resolve_job, worker_end
from pollwatch.store.reading import open_database

DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")
TIMING_FACTOR = 2.0  # intervals differing by more than this factor count as a timing divergence



@dataclass
class JobTrace:
    """One job as diff sees it: the job row, its polls in arrival order, and the worker log
    events its database joined to it (`pollwatch worker-log`)."""

    label: str
    job: dict[str, Any]
    polls: list[dict[str, Any]] = field(default_factory=list)
    worker: list[dict[str, Any]] = field(default_factory=list)

    @property
    def states(self) -> list[str]:
        return json.loads(self.job["states"] or "[]")

    def offset(self, poll: dict[str, Any]) -> float:
        return poll["response_ts"] - self.job["created_at"]

    def intervals(self) -> list[float]:
        times = [p["request_ts"] for p in self.polls]
        return [b - a for a, b in zip(times, times[1:])]


@dataclass
class Divergence:
    aspect: str
    where: str
    a: Any
    b: Any

    def line(self) -> str:
        return f"{self.aspect} ({self.where}): {self.a!r} vs {self.b!r}"


# --- loading -----------------------------------------------------------------------------------

def resolve(reference: str, default_db: str | Path, workdir: Path, worker_logs: Sequence[str | Path] = ()) -> JobTrace:
    """`JOB` (in the default database), `DB.sqlite:JOB`, or `RECORDING:JOB` (analysed first, and
    `worker_logs` joined to it there; a database side shows the worker events it already holds)."""
    source, sep, job = reference.rpartition(":")
    if not sep or not Path(source).is_file():
        source, job = str(default_db), reference
    path = Path(source)
    if path.suffix.lower() not in DB_SUFFIXES:
        from pollwatch.sources.analysis import analyze_recordings

        db = workdir / f"{len(list(workdir.iterdir()))}.sqlite"
        analyze_recordings([path], db)
        _join_worker_logs(db, worker_logs)
        path = db
    conn = open_database(path)
    try:
        return _load(conn, job, label=f"{source}:{job}")
    finally:
        conn.close()


def _load(conn: sqlite3.Connection, ref: str, label: str) -> JobTrace:
    try:
        key = resolve_job(conn, ref)
    except QueryError as exc:
        raise DiffError(f"{label}: {exc}") from exc
    job = dict(conn.execute("select * from jobs where key = ?", (key,)).fetchone())
    polls = [dict(p) for p in conn.execute(
        "select * from polls where job_key = ? and kind = 'poll' order by response_ts, id", (key,))]
    return JobTrace(label, job, polls, list_worker_events(conn, key, job["created_at"]))


def _join_worker_logs(db: Path, worker_logs: Sequence[str | Path]) -> None:
    """Worker logs into a recording's scratch database, joined as `pollwatch worker-log` would."""
    if not worker_logs:
        return
    from pollwatch.core.worker import WorkerSettings
    from pollwatch.logs import read_worker_logs
    from pollwatch.store.worker import ingest

    read = read_worker_logs(worker_logs)
    ingest(db, read.events, settings=WorkerSettings(), label=", ".join(map(str, worker_logs)))


# --- comparing ---------------------------------------------------------------------------------

def _status_url_shape(trace: JobTrace) -> str | None:
    url = trace.job["status_url"]
    if not url:
        return None
    template = Template.learn(url, trace.job["job_id"])
    query = sorted(k for k in url.partition("?")[2].split("&") if k)
    names = [q.split("=", 1)[0] for q in query]
    return f"{template or url}{'?' + '&'.join(names) if names else ''}"


def _cache_key(poll: dict[str, Any]) -> str:
    """What decides whether a client may reuse the response: Cache-Control, ETag, who served it."""
    headers = json.loads(poll["response_cache_headers"] or "{}")
    etag = f"etag {headers['etag']}" if "etag" in headers else "no etag"
    return f"{headers.get('cache-control', 'no cache-control')} / {etag} / {poll['served_by']}"


def _per_poll(aspect: str, key: Callable[[dict[str, Any]], Any],
              unmatched: Callable[[dict[str, Any]], bool] = lambda poll: False
              ) -> Callable[[JobTrace, JobTrace], Divergence | None]:
    """Poll by poll. A poll the other job never made differs only if `unmatched` says it matters
    (one job simply polling longer is timing, not this aspect)."""
    def compare(a: JobTrace, b: JobTrace) -> Divergence | None:
        for index, (pa, pb) in enumerate(zip_longest(a.polls, b.polls), 1):
            if pa is None or pb is None:
                if unmatched(pa or pb):
                    return Divergence(aspect, f"poll #{index}", pa and key(pa), pb and key(pb))
            elif key(pa) != key(pb):
                return Divergence(aspect, f"poll #{index}", key(pa), key(pb))
        return None

    return compare


def _whole(aspect: str, where: str, key: Callable[[JobTrace], Any]) -> Callable[[JobTrace, JobTrace], Divergence | None]:
    def compare(a: JobTrace, b: JobTrace) -> Divergence | None:
        return None if key(a) == key(b) else Divergence(aspect, where, key(a), key(b))

    return compare


def _timing(a: JobTrace, b: JobTrace) -> Divergence | None:
    ia, ib = a.intervals(), b.intervals()
    if not ia or not ib:
        return None
    ma, mb = statistics.median(ia), statistics.median(ib)
    if max(ma, mb) <= TIMING_FACTOR * max(min(ma, mb), 1e-3):
        return None
    return Divergence("timing", "median poll interval (s)", round(ma, 3), round(mb, 3))


COMPARISONS: tuple[Callable[[JobTrace, JobTrace], Divergence | None], ...] = (
    _whole("status URL", "shape", _status_url_shape),
    _whole("host", "scheme://host:port", lambda t: origin_of(t.job["status_url"] or t.job["host"])),
    _per_poll("cache headers", _cache_key),
    _per_poll("status codes", lambda p: p["status"], unmatched=lambda p: (p["status"] or 600) >= 400),
    _whole("state sequence", "states", lambda t: t.states),
    _timing,
)


def compare(a: JobTrace, b: JobTrace) -> list[Divergence]:
    """Every aspect that differs, in investigation order; the first is the first divergence."""
    return [d for check in COMPARISONS if (d := check(a, b)) is not None]


def timeline(a: JobTrace, b: JobTrace) -> list[dict[str, Any]]:
    """Both jobs' polls side by side (by poll number), as plain rows; `behind_worker` marks a
    non-terminal answer to a poll sent after that side's worker logged the job's end."""
    behind = {id(p) for trace in (a, b) for p in polls_behind_worker(trace.worker, trace.polls)}
    rows = []
    for index in range(max(len(a.polls), len(b.polls))):
        row: dict[str, Any] = {"poll": index + 1}
        for side, trace in (("a", a), ("b", b)):
            poll = trace.polls[index] if index < len(trace.polls) else None
            row[side] = None if poll is None else {
                "offset": round(trace.offset(poll), 3), "status": poll["status"], "state": poll["state"],
                "cache": _cache_key(poll), "behind_worker": id(poll) in behind,
            }
        rows.append(row)
    return rows


def diff(reference_a: str, reference_b: str, default_db: str | Path,
         worker_logs: Sequence[str | Path] = ()) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = (resolve(r, default_db, Path(tmp), worker_logs) for r in (reference_a, reference_b))
    divergences = compare(a, b)
    return {
        "a": _summary(a), "b": _summary(b),
        "first_divergence": divergences[0].__dict__ if divergences else None,
        "divergences": [d.__dict__ for d in divergences],
        "timeline": timeline(a, b),
    }


def _summary(trace: JobTrace) -> dict[str, Any]:
    return {"label": trace.label, "job_id": trace.job["job_id"], "status_url": trace.job["status_url"],
            "host": trace.job["host"], "states": trace.states, "terminal_state": trace.job["terminal_state"],
            "polls": len(trace.polls)} | _worker_summary(trace)


def _worker_summary(trace: JobTrace) -> dict[str, Any]:
    """The worker's side on the polls' axis (offsets from the job's creation): its events, when
    it logged the end, and how many answers after that were still non-terminal."""
    end = worker_end(trace.worker)
    return {"worker_events": [{"offset": e["offset_s"], "at": e["at"], "state": e["state"],
                               "state_word": e["state_word"], "source": e["source"], "message": e["message"]}
                              for e in trace.worker],
            "worker_end": None if end is None else end["offset_s"],
            "polls_behind_worker": len(polls_behind_worker(trace.worker, trace.polls))}
