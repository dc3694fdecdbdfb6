"""Remembering a pure function of one text, for short texts only.

The same short values come with every poll of a job (a URL, a Date, a Cache-Control value, a
state word), and the hot path parses or cleans each of them; a long value, sent once, must not
stay in memory after its exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

R = TypeVar("R")


def remembered_when_short(function: Callable[[str], R], *, longest: int, size: int) -> Callable[[str], R]:
    """`function`, its results for texts up to `longest` characters remembered, `size` of them at
    the most. The returned function's `cache_info` counts what is kept."""
    kept = lru_cache(maxsize=size)(function)

    def call(value: str) -> R:
        return kept(value) if len(value) <= longest else function(value)

    call.cache_info = kept.cache_info  # type: ignore[attr-defined]
    return call
