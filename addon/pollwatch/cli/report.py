"""`pollwatch report`: one self-contained HTML file to attach to an incident.

The page code is imported only when a report is asked for.
"""

from __future__ import annotations

import click

from pollwatch.cli.options import db_option, job_prefix_option, session_option
from pollwatch.cli.progress import progress_bar

PROGRESS_FROM = 200
"""Jobs to draw before a progress bar is worth showing."""


@click.command()
@db_option()
@click.option("-o", "--output", default="pollwatch-report.html", show_default=True,
              type=click.Path(dir_okay=False, writable=True), help="HTML file to write (replaced).")
@session_option
@job_prefix_option
@click.option("--full", default=100, show_default=True, type=click.IntRange(min=0),
              help="Draw at most this many jobs with findings in full (worst first); the rest become tables.")
def report(db: str, output: str, session: str | None, job_prefix: str | None, full: int) -> None:
    """Write a self-contained HTML report: summary, a timeline per job, findings with their fixes.

    No network assets: the file can be mailed or attached to a ticket as it is. Jobs with
    findings are drawn worst first; healthy jobs are collapsed. Example:
    `pollwatch report --db pollwatch.sqlite -o incident.html --job e-10`.
    """
    from pollwatch.report import write_report

    with progress_bar("drawing jobs", show_from=PROGRESS_FROM) as on_progress:
        stats = write_report(db, output, session=session, job_prefix=job_prefix, full=full, on_progress=on_progress)
    click.echo(stats.line())


COMMANDS: tuple[click.Command, ...] = (report,)
