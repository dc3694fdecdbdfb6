"""Sanitized flows written out, as a mitmproxy flow file or HAR, for `pollwatch sanitize`.

Only sanitize writes; scan reads through loading.py alone, so the writers live apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy import io as mio

from pollwatch.core.observation import clean_text
from pollwatch.mitm.flows import request_url
from pollwatch.share.loading import UNKNOWN_PEER


def write_flows(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path) -> None:
    with target.open("wb") as f:
        writer = mio.FlowWriter(f)
        for flow, extra in zip(flows, extras):
            if extra:
                flow.metadata["har"] = extra
            writer.add(flow)


def write_har(flows: list[http.HTTPFlow], extras: list[dict[str, Any]], target: Path) -> None:
    """mitmproxy's own HAR export, plus the HAR fields the analysis reads (connection, _fromCache)."""
    from mitmproxy.addons.savehar import SaveHar

    har = SaveHar().make_har(flows)
    for entry, flow, extra in zip(har["log"]["entries"], flows, extras):
        if flow.request.method != "CONNECT":
            entry["request"]["url"] = request_url(flow.request)  # an IPv6 host in brackets, unlike pretty_url
        peer = flow.client_conn.peername
        if peer and tuple(peer) != UNKNOWN_PEER:
            entry["connection"] = f"{peer[0]}:{peer[1]}"
        entry.update(extra)
    target.write_text(clean_text(json.dumps(har, indent=2, ensure_ascii=False)), encoding="utf-8")  # valid UTF-8


WRITERS: dict[str, Callable[[list[http.HTTPFlow], list[dict[str, Any]], Path], None]] = {
    "flows": write_flows, "har": write_har}


def output_format(output: Path, requested: str | None) -> str:
    """`--format` if given, else from OUT's suffix: .har is HAR, anything else a flow file."""
    if requested:
        return requested
    return "har" if output.suffix.lower() in (".har", ".json") else "flows"
