"""Options shared by pollwatch's commands, declared once (in sqlite-utils' spirit).

`--format` always means how a command prints its result: `table` for people, `json` for scripts.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import click

from pollwatch.core.findings import CATALOGUE
from pollwatch.errors import StorageError
from pollwatch.files import check_input

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DB = "pollwatch.sqlite"


DATABASE = "pollwatch.database"
"""Where `--db` is kept in the context's meta: the CLI's error boundary names it in a database error."""


def db_option(default: str = DEFAULT_DB, help: str = "pollwatch SQLite database.") -> Callable[[F], F]:
    """`--db FILE`; commands that fill a database of their own name their own default and help."""
    return click.option("--db", default=default, show_default=True, type=click.Path(dir_okay=False), help=help,
                        callback=_database)


def _database(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Remember the database, and refuse a FIFO or a device before SQLite opens it."""
    ctx.meta[DATABASE] = value
    if value and os.path.lexists(value):
        check_input(value, StorageError)
    return value


format_option = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Table for people, JSON for scripts.")
DEFAULT_ROWS = 100
"""Rows a table shows unless `--limit` says otherwise; JSON lists every row unless told."""
limit_option = click.option("--limit", type=click.IntRange(min=0, max=2**63 - 1), default=None, metavar="N",
                            help=f"Show the N newest rows (jobs --stuck: the N longest idle). Default: {DEFAULT_ROWS} in a "
                                 "table, all in JSON; 0: all.")


def rows_to_show(limit: int | None, fmt: str) -> int | None:
    """`--limit` as the query's limit: None lists everything."""
    if limit is None:
        return None if fmt == "json" else DEFAULT_ROWS
    return limit or None


session_option = click.option("--session", default=None, help="Only this session id (see `pollwatch sessions`).")
job_prefix_option = click.option("--job", "job_prefix", default=None, metavar="PREFIX",
                                 help="Only jobs whose id (or key) starts with PREFIX.")
code_choice = click.Choice(sorted(CATALOGUE))


def listen_options(default_port: int = 8080) -> Callable[[F], F]:
    """`--port` and `--listen-host` of a proxy pollwatch starts (loopback unless asked)."""
    def decorate(command: F) -> F:
        command = click.option("--listen-host", default="127.0.0.1", show_default=True,
                               help="Proxy listen address.")(command)
        return click.option("--port", "-p", default=default_port, show_default=True, help="Proxy listen port.")(command)
    return decorate


class Since(click.ParamType):
    """A moment: a duration back from now (`90s`, `10m`, `2h`, `30d`, `1w`) or an ISO time
    (local time unless it carries `Z` or an offset). Converted to epoch seconds."""

    name = "since"
    UNITS: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        if m := self.DURATION.fullmatch(text):
            return time.time() - float(m.group(1)) * self.UNITS[m.group(2)]
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            self.fail(f"{value!r} is neither a duration like 10m, 2h, 30d nor an ISO time like 2026-11-28T16:40",
                      param, ctx)


since_option = click.option("--since", type=Since(), default=None, metavar="WHEN",
                            help="Only since WHEN: a duration back from now (10m, 2h, 30d) or an ISO time.")
