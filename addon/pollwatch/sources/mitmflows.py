"""mitmproxy flow files (`mitmdump -w`), read through the same adapter the live addon uses, so a
recorded flow and a live one give the same Observation. The only reader that imports mitmproxy."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pollwatch.core.observation import Observation
from pollwatch.errors import ReadError, first_line
from pollwatch.files import open_input
from pollwatch.sources.base import ENTRY_ERRORS, Reader, Recording, describe, instant

_TNETSTRING = re.compile(rb"\d{1,12}:")
"""A flow file is a run of tnetstrings: a length in ASCII digits, then a colon."""


def looks_like_flows(head: bytes) -> bool:
    return bool(_TNETSTRING.match(head))


def read_flows(path: Path, document: Any = None) -> Recording:
    return Recording(path, "flows", [obs for obs, _ in iter_flows(path)], synthetic_times=False)


def iter_flows(path: Path) -> Iterator[tuple[Observation, int]]:
    """The file's HTTP flows as observations, one at a time with the byte offset read so far: a
    flow file can be larger than memory (`pollwatch analyze` streams it). A flow mitmproxy cannot
    load, or whose times no clock can show, is a ReadError naming the file, the flow and the byte."""
    from mitmproxy import http, io

    from pollwatch.mitm.flows import observation_from_flow

    seen = False
    with open_input(path) as f:
        flows = io.FlowReader(f).stream()
        for index in itertools.count():
            offset = f.tell()
            try:
                flow = next(flows)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - damaged flows fail mitmproxy's reader and migration in any way
                raise ReadError(f"{path}: not a readable mitmproxy flow file: flow {index} at byte {offset} "
                                f"({_reason(exc)})") from exc
            if isinstance(flow, http.HTTPFlow):
                try:
                    obs = observation_from_flow(flow)
                    obs.loaded()  # read headers and body now: the flow object is not kept
                    instant(obs.request_ts, "request time")
                    instant(obs.response_ts, "response time")
                except ENTRY_ERRORS as exc:
                    raise ReadError(f"{path}: flow {index} at byte {offset} is malformed ({describe(exc)})") from exc
                seen = True
                yield obs, f.tell()
    if not seen and path.stat().st_size:
        raise ReadError(f"{path}: no HTTP flows in it (unknown format?)")


def _reason(exc: Exception) -> str:
    """mitmproxy's own message for a format error; the exception's type too for anything else."""
    from mitmproxy import exceptions

    if isinstance(exc, exceptions.FlowReadException):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc) else type(exc).__name__


READER = Reader(kind="flows", syntaxes=frozenset({"flows"}), recognises=lambda document, syntax: True,
                read=read_flows)
