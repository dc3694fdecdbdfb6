"""Betamax cassettes (Python `requests` test suites) into Observations.

JSON with `http_interactions` and `recorded_with: betamax/x.y`, in the shape Betamax took from
Ruby VCR; `recorded_at` is an ISO time in UTC, which is the clock. Betamax stores the body as it
came off the wire: gzip always as `base64_string`, deflate and br often so, and these are
decompressed (bounded) per Content-Encoding. Old cassettes have `status_code` and plain-string
headers; both are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollwatch.sources.base import (
    Reader,
    Recording,
    read_interactions,
    vcr_interaction,
)


def recognises(document: Any, syntax: str) -> bool:
    """JSON with `http_interactions` not written by Ruby VCR (whose `recorded_with` says VCR)."""
    if not isinstance(document, dict) or "http_interactions" not in document:
        return False
    recorder = document.get("recorded_with")
    return not (isinstance(recorder, str) and recorder.strip().upper().startswith("VCR"))


def read_betamax(path: Path, document: Any) -> Recording:
    return read_interactions(path, document, "http_interactions", "Betamax cassette", "betamax", vcr_interaction)


READER = Reader(kind="betamax", syntaxes=frozenset({"json"}), recognises=recognises, read=read_betamax)
