"""Writing a whole recording's analysis: the live Store, with the producer held back while the
writer is behind (an offline run outpaces the writer thread; the queue must not grow with the
recording), and a way to take a half-written session out again when the input fails midway."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pollwatch.core.records import Update
from pollwatch.store.database import Store
from pollwatch.store.prune import CHILD_TABLES

BACKLOG = 4000
"""Updates queued at most before `submit` waits for the writer (a few MB of rows)."""


class BulkStore(Store):
    """A Store whose `submit` blocks while more than BACKLOG updates wait to be written."""

    def submit(self, update: Update) -> None:
        while len(self._pending) > BACKLOG and self._thread is not None and self._thread.is_alive():
            time.sleep(0.005)
        super().submit(update)


def discard_session(path: str | Path, session_id: str) -> None:
    """Remove every row of one session (an analysis whose input turned out unreadable midway)."""
    conn = sqlite3.connect(str(path))
    try:
        with conn:  # one transaction: the session is whole or gone
            for table in CHILD_TABLES:
                conn.execute(f"delete from {table} where session_id = ?", [session_id])
            conn.execute("delete from sessions where id = ?", [session_id])
    finally:
        conn.close()
