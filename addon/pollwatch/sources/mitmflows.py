"""mitmproxy flow files (`mitmdump -w`), read through the same adapter the live addon uses, so a
recorded flow and a live one give the same Observation. The only reader that imports mitmproxy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pollwatch.core.observation import Observation
from pollwatch.errors import ReadError
from pollwatch.sources.base import Reader, Recording

_TNETSTRING = re.compile(rb"\d{1,12}:")
"""A flow file is a run of tnetstrings: a length in ASCII digits, then a colon."""


def looks_like_flows(head: bytes) -> bool:
    return bool(_TNETSTRING.match(head))


def read_flows(path: Path, document: Any = None) -> Recording:
    return Recording(path, "flows", [obs for obs, _ in iter_flows(path)], synthetic_times=False)


def iter_flows(path: Path) -> Iterator[tuple[Observation, int]]:
    """The file's HTTP flows as observations, one at a time with the byte offset read so far: a
    flow file can be larger than memory (`pollwatch analyze` streams it)."""
    from mitmproxy import exceptions, http, io

    from pollwatch.mitm.flows import observation_from_flow

    seen = False
    with path.open("rb") as f:
        reader = io.FlowReader(f)
        try:
            for flow in reader.stream():
                if isinstance(flow, http.HTTPFlow):
                    obs = observation_from_flow(flow)
                    obs.content()  # read the body now: the flow object is not kept
                    seen = True
                    yield obs, f.tell()
        except exceptions.FlowReadException as exc:
            raise ReadError(f"{path}: not a readable mitmproxy flow file at byte {f.tell()} ({exc})") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(f"{path}: corrupt mitmproxy flow file at byte {f.tell()} ({exc})") from exc
    if not seen and path.stat().st_size:
        raise ReadError(f"{path}: no HTTP flows in it (unknown format?)")


READER = Reader(kind="flows", syntaxes=frozenset({"flows"}), recognises=lambda document, syntax: True,
                read=read_flows)
