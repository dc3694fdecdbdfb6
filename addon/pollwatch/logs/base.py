"""Reading worker logs: one module per format behind one interface, and the run over files.

A format either parses lines (`LineFormat`: JSON lines, logfmt, a regex) or reads a whole file
(a document format plugs in with `register`). Lines that cannot be parsed are counted, with
the first as an example; they never stop the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pollwatch.core.redact import redact_log_text
from pollwatch.core.worker import WorkerEvent
from pollwatch.errors import ReadError
from pollwatch.logs.fields import FieldNames, Mapper, NoTime

EXAMPLE_LIMIT = 120
"""Characters of a bad line kept as the example (it may hold secrets: redacted, bounded)."""


@dataclass
class Bad:
    """An unparseable line: where, and why."""

    source: str
    reason: str
    text: str


class WorkerLogFormat(Protocol):
    """A worker log format: recognises its files and reads them into events (or Bad lines)."""

    name: str

    def sniff(self, head: str) -> bool: ...

    def read(self, path: Path, mapper: Mapper) -> Iterator[WorkerEvent | Bad]: ...


class LineFormat:
    """A format with one record per line; subclasses say how a line becomes a mapping."""

    name = "lines"

    def sniff(self, head: str) -> bool:
        return False

    def record(self, line: str) -> Mapping[str, Any] | None:
        """The line's fields, or None when the line is not in this format."""
        raise NotImplementedError

    def read(self, path: Path, mapper: Mapper) -> Iterator[WorkerEvent | Bad]:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                found = self.line(line, f"{path}:{number}", mapper)
                if found is not None:
                    yield found

    def line(self, line: str, source: str, mapper: Mapper) -> WorkerEvent | Bad | None:
        """One line: an event, a Bad line, or None (blank, or about no job)."""
        text = line.strip()
        if not text:
            return None
        record = self.record(text)
        if record is None:
            return Bad(source, f"not {self.name}", text)
        try:
            return mapper.event(record, source)
        except NoTime as exc:
            return Bad(source, str(exc), text)


FORMATS: dict[str, WorkerLogFormat] = {}
"""Formats by name, in sniffing order."""


def register(fmt: WorkerLogFormat, *, first: bool = False) -> None:
    """Add a format; `first` sniffs it before the others (a document format before JSON lines)."""
    global FORMATS
    FORMATS = {fmt.name: fmt, **FORMATS} if first else {**FORMATS, fmt.name: fmt}


@dataclass
class WorkerLogRead:
    """What reading some worker logs gave: events, and the lines that could not be read."""

    events: list[WorkerEvent] = field(default_factory=list)
    bad: int = 0
    bad_example: Bad | None = None
    files: list[str] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """Empty files, passed over."""

    def add_bad(self, bad: Bad) -> None:
        self.bad += 1
        if self.bad_example is None:
            self.bad_example = Bad(bad.source, bad.reason, redact_log_text(bad.text[:4 * EXAMPLE_LIMIT])[:EXAMPLE_LIMIT])

    def bad_line(self) -> str | None:
        """The once-per-run report of unparseable lines."""
        if not self.bad or self.bad_example is None:
            return None
        b = self.bad_example
        return f"{self.bad} line(s) could not be read; first at {b.source} ({b.reason}): {b.text!r}"


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except OSError as exc:
        raise ReadError(f"{path}: cannot read ({exc.strerror})") from exc


def choose(path: Path, wanted: str) -> WorkerLogFormat:
    """The format named `wanted`, or (auto) the first whose sniffer accepts the file's head."""
    if wanted != "auto":
        if wanted not in FORMATS:
            raise ReadError(f"unknown worker log format {wanted!r} (known: {', '.join(FORMATS)})")
        return FORMATS[wanted]
    head = _head(path)
    if head.startswith(b"\x1f\x8b"):
        raise ReadError(f"{path}: gzip-compressed; decompress it first (gunzip -k {path})")
    for fmt in FORMATS.values():
        if fmt.sniff(head.decode("utf-8", "replace")):
            return fmt
    raise ReadError(f"{path}: not a worker log pollwatch can read (JSON lines, logfmt, OTLP/JSON; for plain text pass a --pattern)")


def read_worker_logs(paths: Iterable[str | Path], *, names: FieldNames | None = None,
                     fmt: str | WorkerLogFormat = "auto") -> WorkerLogRead:
    """Every event in the files, in file order; a missing file or unknown format raises ReadError.
    `fmt` is a format's name, "auto" (sniffed per file) or a format object (a regex format)."""
    mapper = Mapper(names)
    result = WorkerLogRead()
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise ReadError(f"{path}: no such file")
        if not _head(path).strip():
            result.skipped.append(str(path))  # an empty log (just rotated, nothing yet) is no error
            continue
        chosen = choose(path, fmt) if isinstance(fmt, str) else fmt
        result.files.append(str(path))
        result.formats[chosen.name] = result.formats.get(chosen.name, 0) + 1
        for item in chosen.read(path, mapper):
            if isinstance(item, Bad):
                result.add_bad(item)
            else:
                result.events.append(item)
    return result
