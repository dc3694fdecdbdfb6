"""Turning what a rule raised into a finding with a stable identity: raised again under the same
key (a once-per-job finding, or once per job and scope), it is counted instead of repeated."""

from __future__ import annotations

from pollwatch.core.findings import CATALOGUE, Finding
from pollwatch.core.job import Job
from pollwatch.core.rules import Raise


class FindingNamer:
    """Keys findings by job (or by the session prefix for findings without a job) and scope."""

    def __init__(self, key_prefix: str) -> None:
        self._key_prefix = key_prefix

    def scope_key(self, job: Job | None, raised: Raise, flow_id: str | None = None, ts: float = 0.0) -> str:
        """The finding's identity: per occurrence (scope None), per job, or per job and scope."""
        owner = job.key if job else self._key_prefix
        if raised.scope is None:
            return f"{owner}:{raised.code}:{flow_id or ts}"
        return f"{owner}:{raised.code}" + (f":{raised.scope}" if raised.scope else "")

    def name(self, job: Job | None, raised: Raise, *, flow_id: str | None, ts: float) -> Finding:
        kind = CATALOGUE[raised.code]
        key = self.scope_key(job, raised, flow_id, ts)
        earlier = job.counts.get(key) if job else None
        count = earlier.count + 1 if earlier else 1
        finding = Finding(
            key=key, code=raised.code, severity=kind.severity, job_key=job.key if job else None,
            job_id=job.job_id if job else None,
            flow_id=earlier.flow_id if earlier else flow_id, ts=earlier.ts if earlier else ts,
            message=raised.message, evidence=raised.evidence | ({"count": count} if count > 1 else {}),
            count=count,
        )
        if job is not None and raised.scope is not None:
            job.counts[key] = finding
        return finding

    def amend(self, job: Job, code: str, **changes: object) -> Finding | None:
        """A job's once-per-job finding with fields changed (None if it was never raised): what
        was learnt later changes what it says, it stays one finding."""
        key = self.scope_key(job, Raise(code, ""))
        finding = job.counts.get(key)
        if finding is None:
            return None
        job.counts[key] = finding.model_copy(update=changes)
        return job.counts[key]

