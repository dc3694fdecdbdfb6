"""The sample API's worker log: each job's transitions as JSON lines, written when they happen.

A real worker logs when it takes a job and when it finishes; the sample API's jobs move by the
clock, so a small thread writes each transition as the job reaches it, stamped with the moment
it happened, the job id and the creating request's `X-Request-Id` as the operation id. Faults
that lie about the state (a cache, a lagging replica) do not touch this log: it is the truth
pollwatch compares the client's view with.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pollwatch.demo.jobs import Phase, SampleJob

TICK = 0.02


class WorkerLog:
    """Appends one line per job transition to `path` from a daemon thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[SampleJob, str, Phase | None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, job: SampleJob, request_id: str) -> None:
        """A job was created by the request with this id; its `queued` line is written now."""
        with self._lock:
            self._jobs[job.id] = (job, request_id, None)
        self._write_due()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._thread = threading.Thread(target=self._run, name="sample-api-worker-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._write_due()

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            self._write_due()

    def _write_due(self) -> None:
        now = time.monotonic()
        lines = []
        with self._lock:
            for job_id, (job, request_id, written) in list(self._jobs.items()):
                phase = job.phase(now)
                if phase is written:
                    continue
                lines.append(self._line(job, request_id, phase))
                self._jobs[job_id] = (job, request_id, phase)
                if phase.terminal:
                    del self._jobs[job_id]
            if lines:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.writelines(lines)

    @staticmethod
    def _line(job: SampleJob, request_id: str, phase: Phase) -> str:
        since = 0.0 if phase is Phase.QUEUED or job.started is None else job.started - job.created
        if phase.terminal:
            since += job.timing.running_s
        record = {"ts": round(job.created_wall + since, 6), "level": "info", "msg": f"job {phase.value}",
                  "job_id": job.id, "request_id": request_id, "state": phase.value}
        return json.dumps(record) + "\n"
