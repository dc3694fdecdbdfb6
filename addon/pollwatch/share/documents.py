"""Secrets inside JSON-like documents: bodies, HAR and cassette leftovers, database columns.

secrets.py says what a secret is; this walks a document with those `Detectors`.
`redact_document` blanks sensitive keys and replaces secrets in strings (sanitize);
`document_hits` only reports them, the user's `forbidden` patterns included (scan, and the
parts of a recording that flows cannot carry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mitmproxy.utils.strutils import always_str

from pollwatch.core.redact import REDACTED
from pollwatch.share.secrets import Detectors, Hit, preview

Report = Callable[[str, str, object], None]
"""report(location suffix, rule, original value)"""


def redact_document(value: Any, detectors: Detectors, report: Report, path: str = "$") -> Any:
    """A JSON value with sensitive keys blanked (structure and key names kept) and secrets in
    strings replaced. Also used to scan HAR leftovers and database JSON columns."""
    if isinstance(value, dict):
        return {k: _redact_member(k, v, value, detectors, report, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [redact_document(v, detectors, report, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        new, replaced = detectors.redact_text(value)
        for span, original in replaced:
            report(f"{path} [{span.detail}]" if span.detail else path, span.rule, original)
        return new
    return value


def _redact_member(key: str, value: Any, parent: dict[str, Any], detectors: Detectors, report: Report,
                   path: str) -> Any:
    if detectors.sensitive_key(key, path) or (key == "value" and _names_secret(parent, detectors)):
        blanked = blank(value)
        if blanked != value:
            report(path, "sensitive-key", value)
        return blanked
    return redact_document(value, detectors, report, path)


def _names_secret(pair: dict[str, Any], detectors: Detectors) -> bool:
    """HAR-style `{"name": "Authorization", "value": ...}` pairs (headers, cookies, params, tags)."""
    name = pair.get("name")
    return isinstance(name, str) and (detectors.sensitive_header(name) or detectors.sensitive_key(name, ""))


def blank(value: Any) -> Any:
    """Every string and number inside `value` replaced; keys, booleans and nulls kept."""
    if isinstance(value, dict):
        return {k: blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [blank(v) for v in value]
    if isinstance(value, bool) or value is None or value == "":
        return value
    return REDACTED


def document_hits(document: Any, detectors: Detectors, file: str, index: int | None, flow_id: str | None,
                  prefix: str) -> list[Hit]:
    hits: list[Hit] = []

    def report(path: str, rule: str, value: object) -> None:
        hits.append(Hit(file, index, flow_id, f"{prefix} {path}", rule, preview(value)))

    redact_document(document, detectors, report)
    hits += [Hit(file, index, flow_id, f"{prefix} {path}", span.rule, preview(text[span.start:span.end]))
             for path, text in _strings(document) for span in detectors.forbidden(text)]
    return hits


def _strings(document: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every key and string in a JSON-like document, with its path."""
    if isinstance(document, dict):
        for k, v in document.items():
            yield f"{path}.{k}", str(k)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(document, list):
        for i, v in enumerate(document):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(document, str | bytes):
        yield path, always_str(document, "utf-8", "replace")
