"""Following a worker log while the proxy runs (`--set pollwatch_worker_log=PATH`).

`LogFollower` reads what was appended since the last look, a bounded chunk every
`FOLLOW_INTERVAL` seconds from an asyncio task; a backlog is parsed a few milliseconds per look,
looking again as soon as the loop is free, so traffic never waits on the file; a
rotated file (a new inode at the path) is finished and then read from its start, a truncated one
is read again from its start. `WorkerWatch` hands the events to the core's `WorkerJudge` and
adds its findings to each poll's update, so they are marked, logged and stored like any other.
Unreadable lines and file errors are counted and reported once; they never touch traffic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pollwatch.core.records import Update
from pollwatch.core.worker import WorkerEvent, WorkerSettings
from pollwatch.core.worker_rules import WorkerJudge
from pollwatch.logs import FORMATS, Bad, LineFormat, Mapper, RegexFormat
from pollwatch.logs.base import WorkerLogRead
from pollwatch.logs.fields import FieldNames
from pollwatch.mitm.compat import create_task

log = logging.getLogger("pollwatch")

FOLLOW_INTERVAL = 0.05
CHUNK = 1 << 18
"""Bytes read per look at most: a huge backlog is read over several looks, never in one."""
LOOK_BUDGET = 0.004
"""Seconds of parsing per look: with a backlog, the loop gets back to the traffic this often."""
DRAIN_SECONDS = 3.0
"""Seconds spent at shutdown reading what is left; beyond that the user is told to ingest the file."""
HEAD = 64
"""Bytes at the file's start compared on each look: a truncated file written past our offset
again before we looked has other first bytes."""


class LogFollower:
    """Tails one file by path; `read_new` returns the complete lines appended since last time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = None
        self._inode: int | None = None
        self._pending = b""
        self._head = b""  # the file's first bytes: when they change, the file was rewritten
        self.line_number = 0

    def read_new(self) -> list[tuple[int, str]]:
        """(line number, text) of each complete new line; handles rotation and truncation."""
        lines: list[tuple[int, str]] = []
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return lines  # rotated away and not yet recreated, or not created yet
        if self._file is not None and self._inode != stat.st_ino:
            data = self._file.read(CHUNK)  # the rest of the rotated file first, a chunk per look
            lines += self._take(data)
            if len(data) == CHUNK:
                return lines
            if self._pending:  # a finished file's last line needs no newline
                lines += self._take(b"\n")
            self._close()
        if self._file is not None and (stat.st_size < self._file.tell() or self._rewritten()):
            self._close()  # truncated (and maybe written again past our offset): read from the start
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open between looks
            self._inode = os.fstat(self._file.fileno()).st_ino
            self.line_number = 0
        lines += self._take(self._file.read(CHUNK))
        self._note_head()
        return lines

    def _rewritten(self) -> bool:
        assert self._file is not None
        return bool(self._head) and os.pread(self._file.fileno(), len(self._head), 0) != self._head

    def _note_head(self) -> None:
        assert self._file is not None
        if len(self._head) < HEAD:
            self._head = os.pread(self._file.fileno(), min(HEAD, self._file.tell()), 0)

    def _take(self, data: bytes) -> list[tuple[int, str]]:
        *complete, self._pending = (self._pending + data).split(b"\n")
        out = []
        for raw in complete:
            self.line_number += 1
            out.append((self.line_number, raw.decode("utf-8", "replace")))
        return out

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._pending, self._head = None, b"", b""

    def close(self) -> None:
        self._close()


class WorkerWatch:
    """The live worker-log side of the addon: follow, parse, judge polls."""

    def __init__(self, on_events: Callable[[list[WorkerEvent]], None]) -> None:
        self._on_events = on_events
        self.judge = WorkerJudge()
        self.follower: LogFollower | None = None
        self._mapper = Mapper()
        self._format: LineFormat | None = None
        self._pattern: str | None = None
        self._task: asyncio.Task | None = None
        self._backlog: deque[tuple[int, str]] = deque()  # lines read, not yet parsed
        self.bad = WorkerLogRead()
        self.errors = 0

    @property
    def active(self) -> bool:
        return self.follower is not None

    def configure(self, path: str | None, *, settings: WorkerSettings, names: FieldNames,
                  pattern: str | None) -> None:
        """New settings; a new path starts a new follower (events read so far are kept)."""
        self.judge.settings = settings
        self._mapper = Mapper(names)
        self._pattern = pattern
        self._format = RegexFormat(pattern) if pattern else None
        if path != (str(self.follower.path) if self.follower else None):
            self.stop()
            self.follower = LogFollower(path) if path else None

    def start(self) -> None:
        if self.follower is not None and self._task is None:
            self._task = create_task(self._follow(), name="pollwatch worker log follower")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.follower is not None:
            self.follower.close()
        self._backlog.clear()

    async def _follow(self) -> None:
        while True:
            more = self.look()
            await asyncio.sleep(0 if more else FOLLOW_INTERVAL)  # a backlog: again as soon as traffic had its turn

    def look(self, budget: float = LOOK_BUDGET) -> bool:
        """Read and hand on what was appended, parsing for at most `budget` seconds so a backlog
        never holds up the event loop; True when there is more to read. Errors are counted and
        reported once."""
        if self.follower is None:
            return False
        more = bool(self._backlog)
        try:
            if not self._backlog:
                self._backlog.extend(self.follower.read_new())
                more = bool(self._backlog)
            events = self._parse(time.monotonic() + budget)
        except Exception as exc:  # noqa: BLE001 - a bad file must never reach the traffic
            self._backlog.clear()
            self.errors += 1
            if self.errors == 1:
                log.warning(f"[pollwatch] cannot follow worker log {self.follower.path}: {exc} (further errors counted)")
            return False
        if events:
            self.judge.add_events(events)
            self._on_events(events)
        return more

    def drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """At shutdown: read what the worker wrote last, for at most `seconds`; say what was left."""
        deadline = time.monotonic() + seconds
        while self.look(budget=0.05):
            if time.monotonic() > deadline:
                log.warning(f"[pollwatch] worker log {self.follower.path if self.follower else ''}: stopped "
                            f"reading after {seconds:.0f} s with lines unread; ingest the file with `pollwatch "
                            "worker-log` to add them")
                return

    def _parse(self, deadline: float) -> list[WorkerEvent]:
        assert self.follower is not None
        events: list[WorkerEvent] = []
        done = 0
        while self._backlog:
            done += 1
            if done % 32 == 0 and time.monotonic() > deadline:
                break
            number, text = self._backlog.popleft()
            fmt = self._format or self._sniff(text)
            if fmt is None:
                continue
            found = fmt.line(text, f"{self.follower.path}:{number}", self._mapper)
            if isinstance(found, Bad):
                self.bad.add_bad(found)
                if self.bad.bad == 1:
                    log.warning(f"[pollwatch] worker log: {self.bad.bad_line()} (further bad lines only counted)")
            elif found is not None:
                events.append(found)
        return events

    def _sniff(self, text: str) -> LineFormat | None:
        if not text.strip():
            return None
        for fmt in FORMATS.values():
            if isinstance(fmt, LineFormat) and fmt.sniff(text):
                self._format = fmt
                return fmt
        return None

    def judge_update(self, update: Update) -> None:
        """Add the worker findings of each exchange in `update` to it (before it is announced)."""
        if self.follower is None:
            return
        for each in update.all():
            if each.job is not None and each.poll is not None:
                each.findings += self.judge.judge(each.job, each.poll)


WORKER_OPTIONS = {"pollwatch_worker_log", "pollwatch_worker_grace", "pollwatch_worker_clock_offset",
                  "pollwatch_worker_pattern"}


def add_worker_options(add: Callable[..., None]) -> None:
    """Declare the worker-log options (floats as text: `--set` parses only whole numbers)."""
    add("pollwatch_worker_log", str | None, None, "Follow this worker log (JSON lines, logfmt, or text with "
        "pollwatch_worker_pattern) and compare the worker's states with what clients receive.")
    add("pollwatch_worker_grace", str, "0.1", "Seconds a status may trail the worker's terminal log line.")
    add("pollwatch_worker_clock_offset", str, "0", "Seconds added to worker timestamps (the worker's clock is behind).")
    add("pollwatch_worker_pattern", str | None, None, "Regex with named groups (ts, job_id, state, ...) for a "
        "plain-text worker log.")


def configure_worker(watch: WorkerWatch, options: object) -> dict[str, object]:
    """Apply the worker options; returns the session settings that record them."""
    from mitmproxy import exceptions

    try:
        grace = float(getattr(options, "pollwatch_worker_grace"))
        offset = float(getattr(options, "pollwatch_worker_clock_offset"))
        settings = WorkerSettings(grace=grace)
        path = getattr(options, "pollwatch_worker_log") or None
        watch.configure(path, settings=settings, names=FieldNames(clock_offset=offset),
                        pattern=getattr(options, "pollwatch_worker_pattern") or None)
    except Exception as exc:  # noqa: BLE001 - a bad value is the user's to fix, said in one line
        raise exceptions.OptionsError(f"pollwatch worker log options: {str(exc).splitlines()[0]}") from exc
    if path is None:
        return {}
    return {"worker_log": path, "worker_grace": grace, "worker_clock_offset": offset}
