"""logfmt: `key=value key2="quoted value"` per line (Go's logrus and slog, Heroku, many others)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pollwatch.logs.base import LineFormat, register

_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s]*)')
_SNIFF = re.compile(r'(?:^|\s)[A-Za-z_@.][\w@.\-]*=\S')


def parse_logfmt(line: str) -> dict[str, str]:
    """The key/value pairs of one logfmt line (quoted values unescaped)."""
    out: dict[str, str] = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[key] = value
    return out


class Logfmt(LineFormat):
    name = "logfmt"

    def sniff(self, head: str) -> bool:
        first = next((line.strip() for line in head.splitlines() if line.strip()), "")
        return len(_SNIFF.findall(first)) >= 2

    def record(self, line: str) -> Mapping[str, Any] | None:
        pairs = parse_logfmt(line)
        return pairs or None


register(Logfmt())
