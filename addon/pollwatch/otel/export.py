"""`pollwatch export --otlp`: the jobs of a database as OTLP traces, to a file or to an OTLP/HTTP
receiver on this machine.

A file gets OTLP/JSON, one `ExportTraceServiceRequest` per line (one job per line), as the
Collector's file exporter writes it, so the Collector's `otlpjsonfile` receiver and viewers'
importers read it. An endpoint gets OTLP/HTTP protobuf. Only loopback endpoints: the export
leaves the machine through a Collector the user runs, never straight from pollwatch."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import BaseModel

from pollwatch.errors import ExportError, StorageError
from pollwatch.files import atomic_output, check_output
from pollwatch.otel.jsonform import to_otlp_json
from pollwatch.otel.trace import trace_request
from pollwatch.store.query import job_detail, list_jobs, resolve_job
from pollwatch.store.reading import open_database

__all__ = ["ExportSummary", "OtlpTarget", "export_otlp", "BATCH_JOBS"]

BATCH_JOBS = 50
"""Jobs per OTLP/HTTP request: a few hundred spans, well under receivers' request size limits."""
TRACES_PATH = "/v1/traces"
TIMEOUT_S = 10.0
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ExportSummary(BaseModel):
    """What an export wrote: how many jobs (= traces) and spans, and where."""

    target: str
    jobs: int
    spans: int
    rejected_spans: int = 0


class OtlpTarget(BaseModel):
    """Where `--otlp` points: a file path, or an `http(s)://` OTLP/HTTP traces URL on loopback."""

    text: str

    @property
    def is_endpoint(self) -> bool:
        return self.text.lower().startswith(("http://", "https://"))

    def endpoint(self) -> str:
        """The traces URL (`/v1/traces` added to a bare base URL); non-loopback hosts refused."""
        parts = urlsplit(self.text)
        host = (parts.hostname or "").lower()
        if not _is_loopback(host):
            raise ExportError(f"refusing to send to {host or self.text!r}: pollwatch exports only to an OTLP "
                              "endpoint on this machine (127.0.0.1, ::1, localhost); run a Collector there to "
                              "forward the traces")
        path = parts.path if parts.path not in ("", "/") else TRACES_PATH
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _details(conn: sqlite3.Connection, session: str | None, job: str | None) -> Iterator[dict[str, Any]]:
    keys = [resolve_job(conn, job, session)] if job else [j["key"] for j in list_jobs(conn, session)]
    for key in keys:
        yield job_detail(conn, key)


def _write_file(path: Path, requests: list[ExportTraceServiceRequest]) -> None:
    """All lines or none: written beside `path`, then renamed into place."""
    lines = "".join(json.dumps(to_otlp_json(r), separators=(",", ":")) + "\n" for r in requests)
    with atomic_output(path, ExportError, "the export") as temporary:
        temporary.write_text(lines, encoding="utf-8")


def _post(url: str, requests: list[ExportTraceServiceRequest]) -> int:
    """Send each request; the number of spans the receiver said it rejected."""
    rejected = 0
    with httpx.Client(trust_env=False, timeout=TIMEOUT_S) as client:
        for request in requests:
            try:
                response = client.post(url, content=request.SerializeToString(),
                                       headers={"Content-Type": "application/x-protobuf"})
            except httpx.HTTPError as exc:
                raise ExportError(f"{url}: cannot send the export ({exc or type(exc).__name__})") from exc
            if response.status_code // 100 != 2:
                raise ExportError(f"{url}: the receiver answered {response.status_code} "
                                  f"{response.reason_phrase}; is it an OTLP/HTTP traces endpoint?")
            rejected += _rejected(response)
    return rejected


def _rejected(response: httpx.Response) -> int:
    if "protobuf" not in response.headers.get("content-type", "") or not response.content:
        return 0
    answer = ExportTraceServiceResponse()
    try:
        answer.ParseFromString(response.content)
    except DecodeError:  # an unreadable answer to an accepted export is not a failure
        return 0
    return answer.partial_success.rejected_spans


def _read(db: str | Path, session: str | None, job: str | None) -> list[dict[str, Any]]:
    try:
        conn = open_database(db)
        try:
            return list(_details(conn, session, job))
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"{db}: cannot read ({exc})") from exc


def export_otlp(db: str | Path, target: str, *, session: str | None = None, job: str | None = None,
                service_name: str = "pollwatch") -> ExportSummary:
    """Export the jobs of `db` (one session, one job, or all) as traces to `target`."""
    where = OtlpTarget(text=target)
    url = where.endpoint() if where.is_endpoint else None  # refuse before reading anything
    if url is None:
        check_output(target, ExportError)  # a FIFO or a device too
    details = _read(db, session, job)
    if not details:
        scope = f" in session {session}" if session else ""
        raise ExportError(f"{db}: no jobs to export{scope}")
    if url is None:
        requests = [trace_request([d], service_name) for d in details]
    else:
        requests = [trace_request(details[i:i + BATCH_JOBS], service_name)
                    for i in range(0, len(details), BATCH_JOBS)]
    spans = sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)
    rejected = 0
    if url is None:
        _write_file(Path(target), requests)
    else:
        rejected = _post(url, requests)
    return ExportSummary(target=url or target, jobs=len(details), spans=spans, rejected_spans=rejected)
