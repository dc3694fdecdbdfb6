"""`pollwatch replay`: serve a recording's responses with mitmproxy's server replay, with the
pollwatch addon watching, so a client can be re-run against the recorded backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

EXTRA_CHOICES = ("kill", "forward", "204", "400", "404", "500")


def replay_args(recording: str | Path, *, db: str | Path, port: int, listen_host: str = "127.0.0.1",
                extra: str = "kill", script: str | Path) -> list[str]:
    """mitmdump arguments: replay `recording`, keep serving, watch with pollwatch.

    Recorded responses to one request are used up in recorded order (202, 202, 200 replays as
    that sequence). A request with no recorded response left gets `extra`: `kill` (default)
    closes the connection, `forward` sends it to the real host, a status code answers with it.
    """
    return ["-s", str(script), "-S", str(recording), "--listen-host", listen_host, "-p", str(port),
            "--set", "keepserving=true", "--set", f"server_replay_extra={extra}",
            "--set", f"pollwatch_db={db}", "--set", "pollwatch_session=replay of " + Path(recording).name]


def mitmdump_replay(recording: str | Path, *, db: str | Path, port: int, listen_host: str, extra: str,
                    script: str | Path, more: Sequence[str] = ()) -> int:
    from mitmproxy.tools.main import mitmdump

    return mitmdump([*replay_args(recording, db=db, port=port, listen_host=listen_host, extra=extra,
                                  script=script), *more]) or 0
