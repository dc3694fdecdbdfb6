"""Recordings as streams of observations, for `pollwatch analyze`: a flow file (the format that gets
large: a day's capture) is read one flow at a time while the tracker runs (a large one by a second
process, see flowpipe.py); the other formats are parsed documents, read and checked whole as
`readers.read` does, so their errors come first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pollwatch.core.observation import Observation
from pollwatch.errors import ReadError
from pollwatch.files import read_input
from pollwatch.sources import flowpipe, mitmflows
from pollwatch.sources.readers import read

_HEAD = 64


class Stream:
    """One input file's observations, in recorded order, read as they are consumed. `done` is how
    many of its `size` bytes are behind the observations handed out (for a progress bar)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = _size(path)
        self.done = 0
        self._recording = None if _is_flow_file(path) else read(path)
        self.kind = self._recording.kind if self._recording else "flows"
        self.synthetic_times = bool(self._recording and self._recording.synthetic_times)

    def __iter__(self) -> Iterator[Observation]:
        if self._recording is not None:
            observations, self._recording.observations = self._recording.observations, []  # handed out once
            for n, obs in enumerate(observations, 1):
                self.done = self.size * n // len(observations)
                yield obs
        else:
            flows = flowpipe.iter_flows_beside if self.size >= flowpipe.PARALLEL_FROM else mitmflows.iter_flows
            for obs, offset in flows(self.path):
                self.done = offset
                yield obs
        self.done = self.size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _is_flow_file(path: Path) -> bool:
    """As `readers.read` tells them: empty, or starting like a tnetstring. An unreadable file is
    left to `read`, which says why (a FIFO or a device too: never opened, see pollwatch.files)."""
    try:
        head = read_input(path, _HEAD)
    except ReadError:
        return False
    return not head or mitmflows.looks_like_flows(head)
