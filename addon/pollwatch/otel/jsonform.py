"""OTLP/JSON: the protobuf JSON mapping of the OTLP messages with one twist, trace and span ids in
hex instead of base64 (OTLP spec, "JSON Protobuf Encoding"). Writers and readers both go through
here, so pollwatch's files open in the Collector and the Collector's files open in pollwatch."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["to_otlp_json", "from_otlp_json", "ID_KEYS"]

ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
"""The bytes fields OTLP/JSON writes as hex; everywhere else protobuf's JSON mapping holds."""
_HEX_ID = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")

M = TypeVar("M", bound=Message)


def _convert_ids(value: Any, convert: Any) -> Any:
    """`value` with every id field run through `convert`, at any depth (spans, links, log records)."""
    if isinstance(value, dict):
        return {k: convert(v) if k in ID_KEYS and isinstance(v, str) and v else _convert_ids(v, convert)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_convert_ids(item, convert) for item in value]
    return value


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_b64(text: str) -> str:
    """Hex as the spec says; anything else is taken to be base64 already (some early emitters)."""
    if _HEX_ID.match(text):
        return base64.b64encode(bytes.fromhex(text)).decode()
    return text


def to_otlp_json(message: Message) -> dict[str, Any]:
    """A message as OTLP/JSON: camelCase keys, enums as integers, 64-bit integers as strings, hex ids."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    return _convert_ids(document, _b64_to_hex)


def from_otlp_json(document: dict[str, Any], message: M) -> M:
    """Parse OTLP/JSON (camelCase or snake_case keys, hex ids) into `message`; fields a newer OTLP
    added are skipped. Raises ValueError with protobuf's reason when the shape is wrong."""
    try:
        return json_format.ParseDict(_convert_ids(document, _hex_to_b64), message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error) as exc:
        raise ValueError(str(exc)) from exc
