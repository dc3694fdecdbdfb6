"""mitmdump command lines, in one place: `pollwatch run`, `pollwatch replay` and the demo's proxy
all start mitmdump with the pollwatch script; only what they add differs.

`SCRIPT` is the file mitmdump loads with `-s` (same as `addon/pollwatch_addon.py`).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

SCRIPT = Path(__file__).with_name("script.py")

EXTRA_CHOICES = ("kill", "forward", "204", "400", "404", "500")
"""What server replay gives a request once the recording has no response left for it."""


def executable() -> list[str]:
    """mitmdump from the same environment as this Python (a venv's bin), else from PATH."""
    beside = Path(sys.executable).with_name("mitmdump")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mitmdump")
    if found:
        return [found]
    return [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def sets(options: Sequence[str]) -> list[str]:
    """`--set NAME=VALUE` for each option."""
    return [arg for option in options for arg in ("--set", option)]


def watch_args(*, db: str | Path | None, listen_host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """Listen on `listen_host:port` with the pollwatch script writing to `db` (None: no script,
    a bare mitmdump for baselines)."""
    args = ["--listen-host", listen_host, "-p", str(port)]
    if db is not None:
        args += ["-s", str(SCRIPT), *sets([f"pollwatch_db={db}"])]
    return args


def replay_args(recording: str | Path, *, db: str | Path, port: int, listen_host: str = "127.0.0.1",
                extra: str = "kill") -> list[str]:
    """Replay `recording` (mitmproxy server replay), keep serving, watch with pollwatch.

    Recorded responses to one request are used up in recorded order (202, 202, 200 replays as
    that sequence). A request with no recorded response left gets `extra`: `kill` (default)
    closes the connection, `forward` sends it to the real host, a status code answers with it.
    """
    return [*watch_args(db=db, listen_host=listen_host, port=port), *serve_args(recording, extra=extra)]


def serve_args(recording: str | Path, *, extra: str = "kill") -> list[str]:
    """What `replay_args` adds to a watching mitmdump: serve `recording`, keep serving, label the session."""
    return ["-S", str(recording), *sets(["keepserving=true", f"server_replay_extra={extra}",
                                         "pollwatch_session=replay of " + Path(recording).name])]


def read_args(recording: str | Path, *, db: str | Path) -> list[str]:
    """Feed a recorded flow file through the addon without listening (`mitmdump -nr FILE`)."""
    return ["-n", "-r", str(recording), "-s", str(SCRIPT), *sets([f"pollwatch_db={db}", "flow_detail=0"])]


def run_in_process(args: Sequence[str]) -> int:
    """Run mitmdump in this process (for `pollwatch run` and `replay`); its exit code, or 1 when
    rows could not be stored (mitmdump itself exits 0 after an error logged past start-up)."""
    from mitmproxy.tools.main import mitmdump

    from pollwatch.store.database import Store

    return mitmdump(list(args)) or (1 if Store.lost_in_process else 0)
