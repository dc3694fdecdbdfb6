"""How pollwatch's commands print: one table style for people, JSON for scripts, one palette."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}
STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "magenta", "expired": "magenta",
               "running": "blue", "queued": "white", "unknown": "dim"}

Cell = str | Text
"""A table cell: `str` is shown as it is (captured data is never read as rich markup), `Text` as styled."""


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Table:
    """The one table style of the commands."""
    out = Table(title=Text(title), title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return out


def emit(rows: list[dict[str, Any]], fmt: str, title: str, columns: Sequence[str],
         cells: Callable[[dict[str, Any]], list[Cell]], *, total: int | None = None, more: str = "") -> None:
    """JSON for scripts (the rows as they are), or a rich table for people. `total` is how many
    rows there are when only some are shown; `more` says which are missing and how to see them."""
    if fmt == "json":
        echo_json(rows)
        return
    hidden = (total or 0) - len(rows)
    Console().print(table(f"{len(rows)}{f' of {total}' if hidden > 0 else ''} {title}", columns, map(cells, rows)))
    if hidden > 0:
        click.echo(f"{hidden} more not shown{f' ({more})' if more else ''}: --limit 0 shows all, "
                   "--format json lists them for scripts")


def echo_json(rows: list[dict[str, Any]]) -> None:
    """A JSON array, one row to a line (readable and greppable), keys sorted, compact. A listing
    may hold every job of a large database: orjson encodes a row several times faster than json's
    C encoder, and each row is written as it is encoded (a list of 100,000 small encoded rows
    fragments the heap to a gigabyte). A row orjson refuses (a lone surrogate, an integer beyond
    64 bits, bytes) goes through json, in the same shape, so the array is always complete."""
    if not rows or sys.stdout is None:  # no stdout at all (pythonw): as click.echo, nothing
        click.echo("[]")
        return
    sys.stdout.flush()  # what was printed before goes first
    binary = getattr(sys.stdout, "buffer", None)  # the real stream's, or click's test runner's
    write: Callable[[bytes], object] = binary.write if binary is not None else (
        lambda data: sys.stdout.write(data.decode()))  # a text-only stream (an embedding program's)
    write(b"[\n  ")
    for i, row in enumerate(rows):
        if i:
            write(b",\n  ")
        try:
            write(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        except TypeError:  # orjson.JSONEncodeError is one
            write(_FALLBACK(row).encode())
    write(b"\n]\n")
    (binary or sys.stdout).flush()


def _readable(value: object) -> str:
    """What json cannot encode either, as text: a BLOB where text belongs (a damaged database)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_FALLBACK = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_readable).encode
