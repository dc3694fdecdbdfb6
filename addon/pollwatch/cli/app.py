"""The `pollwatch` click group: registers every command and turns library errors into one line.

Each command module holds thin commands that call into the library and lists them in `COMMANDS`;
this module is the only place that knows them all.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

import click

from pollwatch import __version__
from pollwatch.cli import capture, contract, demo, offline, query, report, share  # noqa: I001
from pollwatch.cli import export as export_commands
from pollwatch.cli import worker as worker_commands
from pollwatch.cli import testing as testing_commands
from pollwatch.cli.options import DATABASE
from pollwatch.errors import PollwatchError, first_line
from pollwatch.store.reading import database_failure


SQLITE_ROW_MISSING_COLUMN = "No item with that key"
"""sqlite3.Row's IndexError for a column the row lacks: a damaged or foreign schema, not a bug."""
TRACEBACK_VARIABLE = "POLLWATCH_TRACEBACK"
"""Set (to anything) to get the traceback of an internal error instead of its one line."""


class PollwatchGroup(click.Group):
    """The error boundary: whatever a command raises leaves as one line. A `PollwatchError` says
    what to do; an SQLite error no library code caught names the database (damaged pages, a
    schema that is not pollwatch's); anything else is a bug, said so in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PollwatchError as exc:
            raise click.ClickException(str(exc)) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # the reader left (`| head`): click ends quietly, as a filter does
            raise
        except sqlite3.Error as exc:
            failure = database_failure(ctx.meta.get(DATABASE) or "the database", exc, doing="use")
            raise click.ClickException(str(failure)) from exc
        except IndexError as exc:
            if str(exc) != SQLITE_ROW_MISSING_COLUMN:
                raise self._internal(ctx, exc) from exc
            failure = database_failure(ctx.meta.get(DATABASE) or "the database",
                                       Exception("a column pollwatch reads is missing"), doing="use")
            raise click.ClickException(str(failure)) from exc
        except Exception as exc:
            raise self._internal(ctx, exc) from exc

    @staticmethod
    def _internal(ctx: click.Context, exc: Exception) -> Exception:
        """A bug: one line saying so, or the exception itself when the user asked for tracebacks."""
        if os.environ.get(TRACEBACK_VARIABLE):
            return exc
        return click.ClickException(
            f"internal error in {ctx.invoked_subcommand or 'pollwatch'}: {type(exc).__name__}: "
            f"{first_line(exc, 160)} (please file a bug; {TRACEBACK_VARIABLE}=1 shows the traceback)")


@click.group("pollwatch", cls=PollwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pollwatch")
def main() -> None:
    """Watch asynchronous HTTP jobs (202 Accepted + status polling) through mitmproxy.

    \b
    Quick start:
      pollwatch demo                 sample API with real polling bugs, watched live
      pollwatch run --port 8080      proxy your own client; warnings appear as they happen
      pollwatch jobs                 what was captured (--stuck: which jobs are stuck, and why)
      pollwatch warnings             what went wrong, and how to fix it
      pollwatch show JOB             one job's timeline and a support block for the incident
      pollwatch report -o r.html     one HTML file with every job's timeline
      pollwatch analyze FILES        recordings (flows, HAR, VCR cassettes) through the same engine
      pollwatch contract infer FILES write down what the API's jobs do; `contract check` finds drift
      pollwatch export --otlp FILE   each job as an OpenTelemetry trace (file, or OTLP/HTTP on loopback)
      pollwatch regress FILE -o T.py a pytest module running your client against failure variants
    """


for module in (capture, offline, contract, query, report, share, demo, export_commands, worker_commands,
               testing_commands):
    for command in module.COMMANDS:
        main.add_command(command)
