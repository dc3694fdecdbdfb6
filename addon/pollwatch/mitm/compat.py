"""Where mitmproxy 11 and 12 differ, in one place. pollwatch runs on both lines: 11.0 is what
Python 3.11 gets, 12.x needs Python 3.12 or newer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import Any

from mitmproxy.utils import asyncio_utils

_KEEP_REF = "keep_ref" in inspect.signature(asyncio_utils.create_task).parameters


def create_task(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    """mitmproxy's task helper (named, visible in its debug output); mitmproxy 12 asks whether to
    keep a reference, 11 has no such argument. pollwatch always keeps its own reference."""
    if _KEEP_REF:
        return asyncio_utils.create_task(coro, name=name, keep_ref=True)  # type: ignore[call-arg]
    return asyncio_utils.create_task(coro, name=name)
