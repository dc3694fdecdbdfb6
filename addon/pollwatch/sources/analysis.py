"""Offline analysis: recorded traffic through exactly the core that runs live.

All input is read (and checked) before anything is written, so a corrupt file leaves the
database as it was; the session is marked ended only when every row is written. Contracts are
inferred and checked from the same core's updates (nothing is stored).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel

from pollwatch.core.config import Config
from pollwatch.core.contract import Contract, Drift, compare
from pollwatch.core.inference import ContractBuilder
from pollwatch.core.findings import Finding
from pollwatch.sources.readers import Recording, expand, read
from pollwatch.core.records import Update
from pollwatch.store.database import Session, Store
from pollwatch.core.tracking import Tracker

TIME_DEPENDENT = frozenset({"polling-abandoned", "stuck-non-terminal", "poll-too-fast", "status-stale-date",
                            "response-reordered"})
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
    result as one new session in `db`. Raises ReadError (nothing written) on unreadable input."""
    recordings = [read(path) for path in expand(paths)]
    session = Session(source="offline", label=label or ", ".join(str(r.path) for r in recordings))
    tracker = Tracker(config, key_prefix=session.id + "/")
    session.settings = tracker.config.model_dump()
    updates, findings, total = _run(tracker, recordings, on_progress)
    synthetic = [str(r.path) for r in recordings if r.synthetic_times]
    findings = _note_synthetic(findings, bool(synthetic))
    for update in updates:
        update.findings = _note_synthetic(update.findings, bool(synthetic))
        update.earlier = []  # flattened by _run

    with Store(db, session) as store:
        for update in updates:
            store.submit(update)
        store.submit_findings(findings)

    latest = {f.key: f for u in updates for f in u.findings} | {f.key: f for f in findings}
    return AnalysisSummary(
        session_id=session.id, db=str(db), files=[str(r.path) for r in recordings],
        formats=dict(Counter(r.kind for r in recordings)), exchanges=total, jobs=len(tracker.jobs),
        findings=dict(Counter(f.severity.value for f in latest.values())), synthetic_times=synthetic,
    )


def _run(tracker: Tracker, recordings: list[Recording],
         on_progress: Callable[[int, int], None] | None) -> tuple[list[Update], list[Finding], int]:
    """Observe everything in order; each recording's end is a capture end for its own jobs."""
    total = sum(len(r.observations) for r in recordings)
    updates: list[Update] = []
    lifecycle: list[Finding] = []
    done = 0
    for recording in recordings:
        for obs in recording.observations:
            update = tracker.observe(obs)
            if update is not None:
                updates.extend(update.all())
            done += 1
            if on_progress is not None and (done % 200 == 0 or done == total):
                on_progress(done, total)
        end = max((o.response_ts for o in recording.observations), default=tracker.clock)
        lifecycle += tracker.finish(end)
    return updates, lifecycle, total


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
