"""`pollwatch run` and `pollwatch replay`: mitmdump with the pollwatch addon, live or replaying."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from pollwatch.cli.options import db_option, listen_options
from pollwatch.mitm import mitmdump

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.command(context_settings=PASS_THROUGH)
@db_option()
@listen_options()
@click.option("--fix", type=click.Choice(["no-store"]), default=None,
              help="Try the fix without changing the server: status responses of tracked jobs get "
                   "Cache-Control: no-store and lose their validators (findings use the originals).")
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def run(db: str, port: int, listen_host: str, fix: str | None, mitmdump_args: Sequence[str]) -> None:
    """Start mitmdump with the pollwatch addon. Extra arguments go to mitmdump.

    Point your client at http://LISTEN-HOST:PORT as its HTTP(S) proxy. Example:
    `pollwatch run --port 8080 --set pollwatch_filter='~d api.example.com'`.
    """
    from pollwatch.store.database import check_writable

    if db:
        check_writable(db)  # one line now, rather than a proxy that stores nothing
    fixes = mitmdump.sets([f"pollwatch_fix={fix}"]) if fix else []
    sys.exit(mitmdump.run_in_process([*mitmdump.watch_args(db=db, listen_host=listen_host, port=port), *fixes,
                                      *mitmdump_args]))


@click.command(context_settings=PASS_THROUGH)
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@db_option("pollwatch-replay.sqlite", "Database for what pollwatch sees during the replay.")
@listen_options()
@click.option("--extra", type=click.Choice(mitmdump.EXTRA_CHOICES), default="kill",
              show_default=True, help="What a request gets once the recording has no response left for it.")
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def replay(recording: str, db: str, port: int, listen_host: str, extra: str, mitmdump_args: Sequence[str]) -> None:
    """Serve RECORDING's responses (mitmproxy server replay) with pollwatch watching.

    Run the client against the proxy with the recorded URLs: the recorded backend answers,
    the fixed client should show no findings, the unfixed one the recorded ones. Recorded
    responses to one request are used up in order; a client that polls more often than the
    recording did gets --extra once they run out (kill: the connection is closed).
    """
    sys.exit(mitmdump.run_in_process([*mitmdump.replay_args(recording, db=db, port=port, listen_host=listen_host,
                                                            extra=extra), *mitmdump_args]))


COMMANDS: tuple[click.Command, ...] = (run, replay)
