"""Reading recorded traffic into Observations, whatever recorded it: the format is told by the
content, never by the file name. First bytes tell a mitmproxy flow file, JSON or YAML apart; the
parsed document's shape then picks the reader (HAR, Betamax, Ruby VCR, go-vcr, VCR.py).

Each reader yields observations in recorded order, with recorded timestamps where the format has
them. A file that cannot be read raises ReadError with a one-line message naming it (and the
place: line, interaction or byte).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import yaml

from pollwatch import safe_yaml
from pollwatch.errors import ReadError, first_line
from pollwatch.files import read_input
from pollwatch.sources import betamax, govcr, har, mitmflows, ruby_vcr, vcrpy
from pollwatch.sources.base import (
    SEQUENCE_STEP,
    SYNTHETIC_SPACING,
    Reader,
    Recording,
    expand,
)

__all__ = ["READERS", "SEQUENCE_STEP", "SYNTHETIC_SPACING", "ReadError", "Reader", "Recording", "expand", "read"]

READERS: tuple[Reader, ...] = (har.READER, betamax.READER, ruby_vcr.READER, govcr.READER, vcrpy.READER)
"""Tried in this order on a parsed document; the first that recognises it reads it."""
KNOWN = "a mitmproxy flow file, HAR, or a VCR.py, Ruby VCR, go-vcr or Betamax cassette"
_HEAD = 4096
_BOM = b"\xef\xbb\xbf"


def read(path: Path) -> Recording:
    """Read one recording, telling its format from its content."""
    path = Path(path)
    head = _bytes(path, _HEAD)
    if not head or mitmflows.looks_like_flows(head):
        return mitmflows.READER.read(path, None)  # streamed: flow files can be large
    if head.removeprefix(_BOM).lstrip().startswith(b"{"):
        syntax, document = "json", _load_json(path, _bytes(path), head)
    elif _is_text(head) or b"interactions:" in head:
        syntax, document = "yaml", _load_yaml(path, _bytes(path).removeprefix(_BOM), head)
    else:
        raise ReadError(f"{path}: unknown format (not {KNOWN})")
    for reader in READERS:
        if syntax in reader.syntaxes and reader.recognises(document, syntax):
            return reader.read(path, document)
    if syntax == "json":
        raise ReadError(f"{path}: unknown format: not a HAR file or a JSON cassette "
                        "(no log, http_interactions or interactions in it)")
    raise ReadError(f"{path}: unknown format (not {KNOWN})")


def load_document(path: Path) -> Any:
    """A JSON or YAML recording as the parsed document, read as `read` reads it (for tools that
    look at every field, such as the secret scan)."""
    path = Path(path)
    head = _bytes(path, _HEAD)
    if head.removeprefix(_BOM).lstrip().startswith(b"{"):
        return _load_json(path, _bytes(path), head)
    return _load_yaml(path, _bytes(path).removeprefix(_BOM), head)


def _bytes(path: Path, limit: int = -1) -> bytes:
    return read_input(path, limit)  # regular files only: a FIFO or a device would never end


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut by the end of the head
    return True


def _load_json(path: Path, data: bytes, head: bytes) -> Any:
    try:
        return _shallow(json.loads(data))
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        problem = exc.msg if isinstance(exc, json.JSONDecodeError) else first_line(exc)
        if b'"http_interactions"' in head:
            what = "not a valid Betamax or Ruby VCR cassette"
        elif b'"interactions"' in head:
            what = "not a valid JSON cassette"
        else:
            what = "not a HAR file"
        raise ReadError(f"{path}: {what}: invalid JSON{where} ({problem})") from exc


def _shallow(document: Any) -> Any:
    """`document` if it nests at most safe_yaml.DEPTH_LIMIT levels (JSON has no aliases to bound,
    but walkers of a deeper one would break on the recursion limit); else ValueError."""
    level: list[Any] = [document]
    for _ in range(safe_yaml.DEPTH_LIMIT):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return document
    raise ValueError(f"nested deeper than {safe_yaml.DEPTH_LIMIT} levels")


class _Loader(safe_yaml.BoundedLoader):
    """Safe, bounded YAML, plus Ruby's `!binary` (Psych's tag for bytes that are not text)."""


def _binary(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    try:
        return base64.b64decode(loader.construct_scalar(node))
    except (binascii.Error, ValueError, TypeError):
        raise yaml.constructor.ConstructorError(None, None, "!binary value is not base64", node.start_mark) from None


_Loader.add_constructor("!binary", _binary)


def _load_yaml(path: Path, data: bytes, head: bytes) -> Any:
    try:
        return safe_yaml.load(data, _Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        if isinstance(exc, yaml.reader.ReaderError):  # bytes that are not text
            where, problem = f" at byte {exc.position}", exc.reason
        else:
            problem = getattr(exc, "problem", None) or first_line(exc)
        if b"interactions:" in head:
            raise ReadError(f"{path}: not a valid YAML cassette{where} ({problem})") from exc
        raise ReadError(f"{path}: unknown format (not {KNOWN}; as YAML: {problem}{where})") from exc
    except (ValueError, RecursionError) as exc:  # a timestamp YAML cannot build, nesting too deep
        raise ReadError(f"{path}: not a valid YAML cassette ({first_line(exc)})") from exc
