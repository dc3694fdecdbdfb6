"""Offline analysis: recorded traffic through exactly the core that runs live.

Recordings are streamed: observations go from the reader to the tracker one at a time and each
update to the store's writer as it comes (finished jobs leave memory by the tracker's own bound),
so memory does not grow with the recording. Files are taken one after another, as before. Parsed
formats (HAR, cassettes) are read and checked before anything is written; a flow file that turns
out corrupt midway takes the half-written session out again, so the database is left as it was.
The session is marked ended only when every row is written. Contracts are
inferred and checked from the same core's updates (nothing is stored).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from pollwatch.core.config import Config
from pollwatch.core.contract import Contract, Drift, compare
from pollwatch.core.inference import ContractBuilder
from pollwatch.core.findings import Finding
from pollwatch.sources.readers import ReadError, Recording, expand, read
from pollwatch.sources.stream import Stream
from pollwatch.core.records import Update
from pollwatch.errors import StorageError
from pollwatch.store.bulk import BulkStore, discard_session
from pollwatch.store.database import Session, Store, remove_database
from pollwatch.store.worker import recompute_file
from pollwatch.core.tracking import Tracker

TIME_DEPENDENT = frozenset({"polling-abandoned", "stuck-non-terminal", "poll-too-fast", "status-stale-date",
                            "response-reordered"})
T = TypeVar("T")
SYNTHETIC_NOTE = "the recording has no timestamps here; pollwatch spaced exchanges 1 s apart, so timing is approximate"


class AnalysisSummary(BaseModel):
    session_id: str
    db: str
    files: list[str]
    formats: dict[str, int]
    exchanges: int
    jobs: int
    findings: dict[str, int]
    synthetic_times: list[str]

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.formats.items()))
        found = ", ".join(f"{self.findings.get(s, 0)} {s}" for s in ("error", "warning", "info"))
        return (f"read {self.exchanges} exchange(s) from {len(self.files)} file(s) ({kinds}): {self.jobs} job(s); "
                f"findings: {found}; session {self.session_id} in {self.db}")


def analyze_recordings(paths: Iterable[str | Path], db: str | Path, *, config: Config | None = None,
            label: str | None = None, on_progress: Callable[[int, int], None] | None = None) -> AnalysisSummary:
    """Read every recording under `paths`, run the core over them in recorded order, store the
    result as one new session in `db`. Raises ReadError on unreadable input, leaving nothing of
    this run in `db`. `on_progress(done, total)` counts KiB of input."""
    streams = [Stream(path) for path in expand(paths)]  # parsed formats are read and checked here
    session = Session(source="offline", label=label or ", ".join(str(s.path) for s in streams))
    tracker = Tracker(config, key_prefix=session.id + "/")
    session.settings = tracker.config.model_dump()
    synthetic = [str(s.path) for s in streams if s.synthetic_times]
    latest, total = _store(db, session, lambda store: _run(tracker, streams, store, bool(synthetic), on_progress))
    recompute_file(db)  # worker events already in the database judge the new polls too

    return AnalysisSummary(
        session_id=session.id, db=str(db), files=[str(s.path) for s in streams],
        formats=dict(Counter(s.kind for s in streams)), exchanges=total, jobs=tracker.index.added,
        findings=dict(Counter(f.severity.value for f in latest.values())), synthetic_times=synthetic,
    )


def _store(db: str | Path, session: Session, run: Callable[[Store], T]) -> T:
    """`run` with a store for the session, or StorageError: an analysis not stored must not say it
    was. A database file this run created is removed again when the run fails; in an older one the
    half-written session is (input unreadable midway: a streamed flow file)."""
    created = not Path(db).exists()
    try:
        store = BulkStore(db, session, on_error=lambda message: None)  # the error below says it once
        try:
            with store:
                result = run(store)
        except ReadError:
            if not created:
                discard_session(db, session.id)
            raise
        if store.rows_lost:
            raise StorageError(f"{db}: cannot write to the database ({store.first_error}); "
                               f"{store.rows_lost} row(s) not stored, the analysis is not saved")
    except (StorageError, ReadError):
        if created:
            remove_database(db)
        raise
    return result


def _run(tracker: Tracker, streams: list[Stream], store: Store, synthetic: bool,
         on_progress: Callable[[int, int], None] | None) -> tuple[dict[str, Finding], int]:
    """Observe everything in order, one exchange at a time, handing each update to the store as
    it comes; each recording's end is a capture end for its own jobs (those findings are stored
    last). Returns the latest finding per key and the number of exchanges."""
    latest: dict[str, Finding] = {}
    lifecycle: list[Finding] = []
    total_kib = sum(s.size for s in streams) // 1024
    done = before = 0
    for stream in streams:
        end: float | None = None
        for obs in stream:
            end = obs.response_ts if end is None else max(end, obs.response_ts)
            update = tracker.observe(obs)
            if update is not None:
                for each in update.all():
                    each.earlier = []  # flattened here
                    each.findings = _note_synthetic(each.findings, synthetic)
                    latest.update((f.key, f) for f in each.findings)
                    store.submit(each)
            done += 1
            if on_progress is not None and done % 200 == 0:
                on_progress((before + stream.done) // 1024, total_kib)
        before += stream.size
        lifecycle += tracker.finish(tracker.clock if end is None else end)
    store.submit_findings(_note_synthetic(lifecycle, synthetic))
    latest.update((f.key, f) for f in lifecycle)
    if on_progress is not None:
        on_progress(total_kib, total_kib)
    return latest, done


def _note_synthetic(findings: list[Finding], synthetic: bool) -> list[Finding]:
    if synthetic:
        for finding in findings:
            if finding.code in TIME_DEPENDENT:
                finding.evidence["note"] = SYNTHETIC_NOTE
    return findings


class ContractCheck(BaseModel):
    """What `check_contract` found: the drift, and what was looked at."""

    files: list[str]
    jobs: int
    families: list[str]
    unexercised: list[str]
    drift: list[Drift]


def infer_contract(paths: Iterable[str | Path], *, config: Config | None = None) -> tuple[Contract, list[str], int]:
    """The contract the recordings under `paths` show: (contract, files read, jobs seen). Each
    recording is its own capture (a fresh tracker), as it was its own session when recorded."""
    recordings = [read(path) for path in expand(paths)]
    builder = ContractBuilder()
    for update in _updates(recordings, config or Config()):
        builder.add(update)
    return builder.contract(), [str(r.path) for r in recordings], builder.jobs


def check_contract(paths: Iterable[str | Path], contract: Contract, *, config: Config | None = None) -> ContractCheck:
    """Recordings compared with `contract`, recognised with what it teaches (and `config`)."""
    settings = config.model_dump() if config is not None else {}
    observed, files, jobs = infer_contract(paths, config=Config.from_contract(contract, **settings))
    seen = {f.key for f in observed.families}
    return ContractCheck(files=files, jobs=jobs, families=[f.name for f in observed.families],
                         unexercised=[f.name for f in contract.families if f.key not in seen],
                         drift=compare(contract, observed))


def _updates(recordings: list[Recording], config: Config) -> Iterator[Update]:
    """Every recording through its own tracker, bodies kept in memory (the inference reads the
    creating response for the job id's field)."""
    serial = itertools.count(1)
    config = config.model_copy(update={"keep_bodies": True})
    for recording in recordings:
        tracker = Tracker(config, serial=serial)
        for obs in recording.observations:
            update = tracker.observe(obs)
            if update is not None:
                yield update
