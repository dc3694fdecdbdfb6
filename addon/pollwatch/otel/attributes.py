"""Python values as OTLP attributes (`KeyValue`/`AnyValue`) and back: the one place that knows the
typed-union shape, for the spans pollwatch writes and the logs and spans it reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

__all__ = ["any_value", "key_values", "plain", "plain_attributes"]


def any_value(value: Any) -> AnyValue:
    """bool, int, float, text, or a list of them; other values become their text."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    """Attributes in key order, leaving out what is None or empty: absent facts are not attributes."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in sorted(attributes.items())
            if v is not None and v != [] and v != ""]


def plain(value: AnyValue) -> Any:
    """An `AnyValue` as a Python value (maps as dicts, arrays as lists, bytes as hex)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return plain_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def plain_attributes(pairs: Iterable[KeyValue] | KeyValueList) -> dict[str, Any]:
    """OTLP attributes as a dict; a later duplicate key wins, as in the SDKs."""
    items = pairs.values if isinstance(pairs, KeyValueList) else pairs
    return {pair.key: plain(pair.value) for pair in items}
