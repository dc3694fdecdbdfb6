"""The `pollwatch` click group: registers every command and turns library errors into one line.

Each command module holds thin commands that call into the library and lists them in `COMMANDS`;
this module is the only place that knows them all.
"""

from __future__ import annotations

from typing import Any

import click

from pollwatch import __version__
from pollwatch.cli import capture, contract, demo, offline, query, report, share  # noqa: I001
from pollwatch.cli import export as export_commands
from pollwatch.cli import worker as worker_commands
from pollwatch.cli import testing as testing_commands
from pollwatch.errors import PollwatchError


class PollwatchGroup(click.Group):
    """A group whose commands may raise any `PollwatchError`: it becomes a one-line click error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PollwatchError as exc:
            raise click.ClickException(str(exc)) from exc


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
