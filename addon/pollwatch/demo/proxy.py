"""A real mitmdump process with the pollwatch addon, on a free loopback port.

Used by `pollwatch demo` and the end-to-end tests: they talk to it as clients would, and read
its output lines as a user would see them in the terminal.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from pollwatch.errors import ProxyError
from pollwatch.mitm import mitmdump

LISTENING = re.compile(r"proxy listening at (?:\*|[\d.]+|\[[^\]]*\]):(\d+)")



class ProxyProcess:
    """`mitmdump -s pollwatch` on 127.0.0.1; `lines` collects everything it prints."""

    def __init__(self, db: str | Path | None, *, record: str | Path | None = None, options: Sequence[str] = (),
                 extra_args: Sequence[str] = (), on_line: Callable[[str], None] | None = None) -> None:
        """`db` None runs mitmdump without pollwatch (a baseline for benchmarks)."""
        self.db = Path(db) if db is not None else None
        given = {option.partition("=")[0] for option in options}  # mitmdump refuses an option set twice
        defaults = [d for d in ("termlog_verbosity=info", "flow_detail=0") if d.partition("=")[0] not in given]
        args = [*mitmdump.executable(), *mitmdump.watch_args(db=db), *mitmdump.sets(defaults)]
        if record is not None:
            args += ["-w", str(record)]
        self.args = [*args, *mitmdump.sets(options), *extra_args]
        self.lines: list[str] = []
        self.port: int | None = None
        self._on_line = on_line
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._port_found: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ProxyProcess":
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         env=env, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            port = self._port_found.get(timeout=timeout)
        except queue.Empty:
            port = None
        if port is None:
            self.stop()
            raise ProxyError("mitmdump did not start:\n" + "\n".join(self.lines[-20:]))
        self.port = port
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self.port is None and (m := LISTENING.search(line)):
                self._port_found.put(int(m.group(1)))
            if self._on_line is not None:
                self._on_line(line)
        self._port_found.put(None)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask mitmdump to shut down cleanly (so the addon flushes), then wait."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self._process.returncode

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def output(self) -> str:
        return "\n".join(self.lines)
