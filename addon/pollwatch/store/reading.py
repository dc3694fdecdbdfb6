"""Opening a pollwatch database to read it: read-only, never created, never changed, and every
SQLite error on the way (damaged pages, a foreign schema, a lock held too long) one line naming
the file. Every read command and the live view open the database here."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pollwatch.errors import first_line
from pollwatch.store.database import BUSY_TIMEOUT_MS, COLUMNS, SCHEMA_VERSION, StorageError, column_sql
from pollwatch.store.views import ensure_views

DAMAGE = (sqlite3.DatabaseError, UnicodeDecodeError)
"""What reading damaged pages raises: SQLite's own errors, or text that is no longer UTF-8."""


def open_database(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to an existing pollwatch database, or a one-line StorageError.
    Reading never creates or changes a file: an empty file stays empty, and views or tables an
    older database lacks are made for this connection only (TEMP)."""
    file = existing_database(path)
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000, factory=_ReadConnection)
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")  # damaged pages must not raise
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")}
        if "meta" not in tables:
            raise StorageError(f"{path}: not a pollwatch database")
        version = conn.execute("select value from meta where key = 'schema_version'").fetchone()
        if version is None or not str(version[0]).isdigit() or not 1 <= int(version[0]) <= SCHEMA_VERSION:
            raise StorageError(f"{path}: schema version {version[0] if version else 'missing'}; this pollwatch "
                               f"reads 1 to {SCHEMA_VERSION} (a newer pollwatch wrote it, or it is not pollwatch's)")
        for table in set(COLUMNS) - tables:
            conn.execute(f"create temp table [{table}] ({column_sql(table)})")
        ensure_views(conn, temporary=True)
    except sqlite3.OperationalError as exc:
        raise StorageError(f"{path}: cannot read the database ({first_line(exc)})") from exc
    except DAMAGE as exc:
        raise StorageError(f"{path}: not a usable SQLite database ({first_line(exc)})") from exc
    conn.row_factory = sqlite3.Row
    conn.path = str(path)  # from here on, an SQLite error is a StorageError naming it
    return conn


def existing_database(path: str | Path) -> Path:
    """`path` if it is a file that may hold a database; else a StorageError (an empty file is no
    database, and must not become one by being opened)."""
    file = Path(path)
    if not file.exists():
        raise StorageError(f"{path}: no such database (run `pollwatch run --db {path}` or `pollwatch demo` first)")
    if not file.is_file() or file.stat().st_size == 0:
        raise StorageError(f"{path}: not a pollwatch database ({'empty file' if file.is_file() else 'not a file'})")
    return file


def database_failure(path: str | Path, exc: Exception, doing: str = "read") -> StorageError:
    """The one line for a database that fails once in use: damaged pages, a schema that is not
    pollwatch's (a missing column), or a lock held too long."""
    hint = "; `sqlite3 FILE .recover` may save what is left" if "malformed" in str(exc) else ""
    return StorageError(f"{path}: cannot {doing} the database ({first_line(exc)}{hint})")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a whole table becomes Python objects: rows
    hold no cycles, and the collector, run after every few hundred new containers, would walk the
    growing heap again and again (a quarter of the time of a 100,000-job listing)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plain_rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows as plain tuples, text decoded by SQLite's own UTF-8 path: the fast
    way to read a whole table (the connection's row and text factories cost a Python call per row
    and per cell). On any trouble (text that is not UTF-8 on a damaged page, say) the rows are read
    again the careful way, which replaces bad bytes or fails in one line naming the file."""
    saved = conn.row_factory, conn.text_factory
    try:
        conn.row_factory, conn.text_factory = None, str
        try:
            cursor = conn.cursor()  # a plain cursor: its errors are not yet the one-line kind
            rows = cursor.execute(sql, args).fetchall()
        except DAMAGE:
            conn.text_factory = saved[1]
            cursor = conn.execute(sql, args)
            rows = cursor.fetchall()
        return [d[0] for d in cursor.description], rows
    finally:
        conn.row_factory, conn.text_factory = saved


class _ReadCursor(sqlite3.Cursor):
    """A cursor of `open_database`: an SQLite error while rows are read is a StorageError naming
    the file (damaged pages are often met only there, long after the database opened)."""

    connection: _ReadConnection

    def execute(self, sql: str, parameters: Any = ()) -> "_ReadCursor":
        try:
            return super().execute(sql, parameters)
        except DAMAGE as exc:
            raise self.connection.failed(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except DAMAGE as exc:
            raise self.connection.failed(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except DAMAGE as exc:
            raise self.connection.failed(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except DAMAGE as exc:
            raise self.connection.failed(exc) from exc


class _ReadConnection(sqlite3.Connection):
    """`execute` on cursors that turn SQLite errors into one line naming the file."""

    path = ""  # set once the database is open and checked; errors before that are open_database's

    def failed(self, exc: sqlite3.DatabaseError | UnicodeDecodeError) -> Exception:
        return database_failure(self.path, exc) if self.path else exc

    def execute(self, sql: str, parameters: Any = ()) -> _ReadCursor:  # type: ignore[override]
        return self.cursor(_ReadCursor).execute(sql, parameters)
