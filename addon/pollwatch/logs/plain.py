"""Plain text with a user's regular expression: named groups are the fields
(`(?P<ts>\\S+) job=(?P<job_id>\\S+) (?P<state>\\w+)`). Lines it does not match are counted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pollwatch.errors import ReadError
from pollwatch.logs.base import LineFormat


class RegexFormat(LineFormat):
    """Not sniffed: chosen when the user passes a pattern."""

    name = "regex"

    def __init__(self, pattern: str) -> None:
        try:
            self.pattern = re.compile(pattern)
        except re.error as exc:
            raise ReadError(f"worker log pattern {pattern!r}: {exc}") from exc
        if not self.pattern.groupindex:
            raise ReadError(f"worker log pattern {pattern!r} has no named groups (?P<name>...)")

    def record(self, line: str) -> Mapping[str, Any] | None:
        match = self.pattern.search(line)
        if match is None:
            return None
        return {k: v for k, v in match.groupdict().items() if v is not None}
