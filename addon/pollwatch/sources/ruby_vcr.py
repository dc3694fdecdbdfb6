"""Ruby VCR cassettes (`http_interactions`, as Rails and Ruby SDK test suites record them) into
Observations.

YAML by default, JSON with `serialize_with: :json`; `recorded_with: VCR x.y`. Each interaction
carries `recorded_at` (an HTTP date, one-second resolution), which is the clock; methods are lower
case and bodies are `{encoding, string}` or, for exact bytes, `{encoding, base64_string}` (Psych
writes undecodable strings as `!binary`, which the YAML loader turns into bytes).
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
    if not isinstance(document, dict) or "http_interactions" not in document:
        return False
    recorder = document.get("recorded_with")
    return syntax == "yaml" or (isinstance(recorder, str) and recorder.strip().upper().startswith("VCR"))


def read_ruby_vcr(path: Path, document: Any) -> Recording:
    return read_interactions(path, document, "http_interactions", "Ruby VCR cassette", "ruby-vcr", vcr_interaction)


READER = Reader(kind="ruby-vcr", syntaxes=frozenset({"yaml", "json"}), recognises=recognises, read=read_ruby_vcr)
