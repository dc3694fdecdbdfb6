"""`pollwatch sanitize`: a recording made safe to share, and the proof.

The input is loaded as flows rebuilt from an allow-list of their parts (loading.py), every flow
goes through `FlowRedactor` (redactor.py), optionally through the `Pseudonymizer`, and the copy
is written beside the target (writing.py), scanned with scan.py's `scan_recording`, and renamed
into place only if the scan finds nothing left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitmproxy import http

from pollwatch.errors import PseudonymizeError, SanitizeError
from pollwatch.files import atomic_output, check_input, check_output
from pollwatch.share.loading import FLOW_KINDS, ClientAddresses, fresh_copy, load
from pollwatch.share.pseudonymize import Pseudonymizer, known_ids
from pollwatch.share.redactor import FlowRedactor
from pollwatch.share.scan import by_flow, scan_recording
from pollwatch.share.secrets import Detectors, Hit, Rules
from pollwatch.share.writing import WRITERS, output_format


@dataclass
class SanitizeResult:
    source: str
    output: str | None
    format: str
    flows: int
    hits: list[Hit]
    skipped: int
    pseudonymized: int = 0

    def line(self) -> str:
        changed = len({h.flow for h in self.hits if h.flow is not None})
        what = "would replace" if self.output is None else "replaced"
        line = (f"{self.source}: {what} {len(self.hits)} value(s) in {changed} of {self.flows} flow(s)"
                + (f"; {self.pseudonymized} id(s)/host(s) pseudonymized" if self.pseudonymized else "")
                + (f"; {self.skipped} non-HTTP flow(s) left out" if self.skipped else ""))
        return line + (f"; wrote {self.output} ({self.format}), scanned clean" if self.output else "")


def sanitize(source: str | Path, output: str | Path | None, *, fmt: str | None = None, pseudonymize: bool = False,
             rules: Rules | None = None, dry_run: bool = False) -> SanitizeResult:
    """Redact one recording into a new file (written aside, scanned, then renamed into place)."""
    source = check_input(source, SanitizeError)  # a FIFO or a device is refused before it is opened
    detectors = Detectors(rules)
    loaded = load(source, detectors)
    if loaded.kind not in FLOW_KINDS:
        raise SanitizeError(f"{source}: a {loaded.kind} recording can be scanned (pollwatch scan) but not sanitized; "
                            "sanitize reads mitmproxy flow files, HAR and VCR.py cassettes")
    ids = known_ids(loaded.flows, detectors)
    detectors = detectors.with_protected(ids)
    pseudonyms = Pseudonymizer(ids, _hosts(loaded.flows)) if pseudonymize else None
    redactor = FlowRedactor(detectors, file=str(source), pseudonyms=pseudonyms, flow_ids=loaded.kind == "flows")
    clients = ClientAddresses()
    flows, hits = [], list(loaded.dropped)
    try:
        for index, original in enumerate(loaded.flows):
            flow = fresh_copy(original, clients)
            hits += redactor.run(flow, index)
            flows.append(flow)
    except PseudonymizeError as exc:
        raise SanitizeError(str(exc)) from exc
    hits.sort(key=by_flow)
    extras = [{k: detectors.redact_text(v)[0] if isinstance(v, str) else v for k, v in e.items()}
              for e in loaded.extras]
    result = SanitizeResult(str(source), None, "", len(flows), hits, loaded.skipped,
                            pseudonyms.count if pseudonyms else 0)
    if dry_run:
        return result
    if output is None:
        raise SanitizeError("no output file given (-o OUT)")
    target = Path(output)
    _refuse_overwriting_input(source, target)
    result.format = output_format(target, fmt)
    result.output = str(target)
    _write_checked(flows, extras, target, result.format, rules)
    return result


def _hosts(flows: list[http.HTTPFlow]) -> set[str]:
    hosts = set()
    for flow in flows:
        hosts.add(flow.request.host)
        host_header = flow.request.headers.get("host")
        if host_header:
            hosts.add(host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header)
    return hosts


def _refuse_overwriting_input(source: Path, target: Path) -> None:
    if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
        raise SanitizeError(f"{target}: is the input file; write the sanitized copy somewhere else")
    if target.is_dir():
        raise SanitizeError(f"{target}: is a folder; give a file name")
    check_output(target, SanitizeError)  # a FIFO or a device is refused before any work


def _write_checked(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path, fmt: str,
                   rules: Rules | None) -> None:
    """Write beside the target, scan what was written, rename into place only if it is clean."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, SanitizeError, "the sanitized copy") as temp:
        WRITERS[fmt](flows, extras, temp)
        left = scan_recording(temp, Detectors(rules))
        if left:
            first = left[0]
            raise SanitizeError(f"refusing to write {target}: the scan still finds {len(left)} secret(s) in the "
                                f"sanitized output, first in flow {first.flow} at {first.location} ({first.rule})")


__all__ = ["SanitizeError", "SanitizeResult", "sanitize"]
