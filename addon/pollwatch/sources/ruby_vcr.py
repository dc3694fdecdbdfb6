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
    Clock,
    Reader,
    Recording,
    each,
    top_list,
    vcr_interaction,
)


def recognises(document: Any, syntax: str) -> bool:
    if not isinstance(document, dict) or "http_interactions" not in document:
        return False
    recorder = document.get("recorded_with")
    return syntax == "yaml" or (isinstance(recorder, str) and recorder.strip().upper().startswith("VCR"))


def read_ruby_vcr(path: Path, document: Any) -> Recording:
    interactions = top_list(path, document, "http_interactions", "Ruby VCR cassette")
    clock = Clock()
    observations = each(path, interactions, "interaction", lambda item, index: vcr_interaction(item, index, clock))
    return Recording(path, "ruby-vcr", observations, synthetic_times=clock.synthetic)


READER = Reader(kind="ruby-vcr", syntaxes=frozenset({"yaml", "json"}), recognises=recognises, read=read_ruby_vcr)
