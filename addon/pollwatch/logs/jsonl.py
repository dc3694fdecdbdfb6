"""JSON lines: one JSON object per line, as structlog, python-json-logger, pino and bunyan write.

Their shapes differ only in field names (`event`/`message`/`msg`, `timestamp`/`time` as ISO
text or epoch milliseconds, numeric or named levels), which `fields` already covers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pollwatch.logs.base import LineFormat, register


class JsonLines(LineFormat):
    name = "jsonl"

    def sniff(self, head: str) -> bool:
        first = next((line.strip() for line in head.splitlines() if line.strip()), "")
        return first.startswith("{") and not first.startswith(('{"resourceLogs"', '{"resourceSpans"'))

    def record(self, line: str) -> Mapping[str, Any] | None:
        if not line.startswith("{"):
            return None
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


register(JsonLines())
