"""The four URL families (API contracts) the sample job API speaks, and CONTRACTS by name.

Each one is a common asynchronous-API style: plain REST with a relative Location (export),
Azure's Operation-Location (azure), a status monitor that ends in a 303 (monitor) and Google
long-running operations (google).  They only render answers; the faults are applied on top
by the job API (api.py).
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping

from pollwatch.demo.jobs import Contract, Phase, SampleJob
from pollwatch.demo.server import NO_STORE, Reply, api_error

__all__ = [
    "CONTRACTS",
    "AzureContract",
    "Contract",
    "ExportContract",
    "GoogleContract",
    "MonitorContract",
]



class ExportContract(Contract):
    """Plain REST: 202 + relative Location, then ``{"status": ...}`` and a download link."""

    name = "export"
    id_prefix = "e"
    create_path = "/api/exports"
    status_route = re.compile(r"^/api/exports/(?P<id>[^/]+)$")
    result_route = re.compile(r"^/api/exports/(?P<id>[^/]+)/download$")

    def accepted(self, job: SampleJob, origin: str) -> Reply:
        return Reply.json(
            202, {"id": job.id, "status": "queued"}, ("Location", f"/api/exports/{job.id}"), NO_STORE
        )

    def status(self, job: SampleJob, phase: Phase) -> Reply:
        body: dict[str, Any] = {"id": job.id, "status": phase.value}
        if phase is Phase.SUCCEEDED:
            body["result"] = f"/api/exports/{job.id}/download"
        if phase is Phase.FAILED:
            body["error"] = {"message": "export worker crashed"}
        return Reply.json(200, body)

    def result(self, job: SampleJob, phase: Phase) -> Reply:
        if phase is not Phase.SUCCEEDED:
            return api_error(409, "export not ready")
        csv = f"id,row\n{job.id},1\n{job.id},2\n{job.id},3\n".encode()
        return Reply(200, csv, (("Content-Type", "text/csv; charset=utf-8"), NO_STORE))


class AzureContract(Contract):
    """Azure style: empty 202 + absolute Operation-Location with api-version; PascalCase words."""

    name = "azure"
    id_prefix = "op"
    create_path = "/api/translations"
    status_route = re.compile(r"^/api/operations/(?P<id>[^/]+)$")
    api_version = "2024-05-01"
    words = MappingProxyType(
        {
            Phase.QUEUED: "NotStarted",
            Phase.RUNNING: "Running",
            Phase.SUCCEEDED: "Succeeded",
            Phase.FAILED: "Failed",
        }
    )

    def accepted(self, job: SampleJob, origin: str) -> Reply:
        location = f"{origin}/api/operations/{job.id}?api-version={self.api_version}"
        return Reply.empty(202, ("Operation-Location", location), NO_STORE)

    def status(self, job: SampleJob, phase: Phase) -> Reply:
        body: dict[str, Any] = {"id": job.id, "status": self.words[phase]}
        if phase is Phase.FAILED:
            body["error"] = {"code": "InternalServerError", "message": "translation worker crashed"}
        return Reply.json(200, body)


class MonitorContract(Contract):
    """Status-monitor style: 202 + Retry-After while pending, then 303 to the report (or 200)."""

    name = "monitor"
    id_prefix = "r"
    create_path = "/api/reports"
    status_route = re.compile(r"^/api/reports/status/(?P<id>[^/]+)$")
    result_route = re.compile(r"^/api/reports/(?P<id>[^/]+)$")

    def accepted(self, job: SampleJob, origin: str) -> Reply:
        return Reply.json(
            202, {"reportId": job.id}, ("Location", f"/api/reports/status/{job.id}"), NO_STORE
        )

    def status(self, job: SampleJob, phase: Phase) -> Reply:
        if phase is Phase.FAILED:
            return Reply.json(200, {"status": "failed", "error": {"message": "report failed"}})
        if not phase.terminal:
            return Reply.empty(202, ("Retry-After", "1"))
        if job.options.end == 200:
            return Reply.json(200, self._report(job))
        return Reply.empty(303, ("Location", f"/api/reports/{job.id}"))

    def result(self, job: SampleJob, phase: Phase) -> Reply:
        if phase is not Phase.SUCCEEDED:
            return api_error(409, "report not ready")
        return Reply.json(200, self._report(job), NO_STORE)

    @staticmethod
    def _report(job: SampleJob) -> dict[str, Any]:
        return {"reportId": job.id, "rows": 3, "total": 42}


class GoogleContract(Contract):
    """Google long-running-operation style: ``{"name", "done"}``, no Location header."""

    name = "google"
    id_prefix = "g"
    create_path = "/v1/operations"
    status_route = re.compile(r"^/v1/operations/(?P<id>[^/]+)$")

    def accepted(self, job: SampleJob, origin: str) -> Reply:
        return Reply.json(202, {"name": f"operations/{job.id}", "done": False}, NO_STORE)

    def status(self, job: SampleJob, phase: Phase) -> Reply:
        body: dict[str, Any] = {"name": f"operations/{job.id}", "done": phase.terminal}
        if phase is Phase.SUCCEEDED:
            body["response"] = {"@type": "type.googleapis.com/pollwatch.demo.ExportResult", "rows": 3}
        if phase is Phase.FAILED:
            body["error"] = {"code": 13, "message": "internal error while exporting"}
        return Reply.json(200, body)


CONTRACTS: Mapping[str, Contract] = MappingProxyType(
    {c.name: c for c in (ExportContract(), AzureContract(), MonitorContract(), GoogleContract())}
)
"""Every contract by name: export, azure, monitor, google."""
