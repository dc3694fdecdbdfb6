"""`pollwatch report`: one self-contained HTML file to attach to an incident.

Kept out of cli.py so the page code loads only when a report is asked for; cli.py registers it
with `main.add_command(report)`.
"""

from __future__ import annotations

import click

from .progress import progress_bar
from .report import DEFAULT_FULL, ReportError, write_report
from .storage import StorageError

PROGRESS_FROM = 200
"""Jobs to draw before a progress bar is worth showing."""


@click.command()
@click.option("--db", default="pollwatch.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="pollwatch SQLite database.")
@click.option("-o", "--output", default="pollwatch-report.html", show_default=True,
              type=click.Path(dir_okay=False, writable=True), help="HTML file to write (replaced).")
@click.option("--session", default=None, help="Only this session id.")
@click.option("--job", "job_prefix", default=None, metavar="PREFIX", help="Only jobs whose id starts with PREFIX.")
@click.option("--full", default=DEFAULT_FULL, show_default=True, type=click.IntRange(min=0),
              help="Draw at most this many jobs with findings in full (worst first); the rest become tables.")
def report(db: str, output: str, session: str | None, job_prefix: str | None, full: int) -> None:
    """Write a self-contained HTML report: summary, a timeline per job, findings with their fixes.

    No network assets: the file can be mailed or attached to a ticket as it is. Jobs with
    findings are drawn worst first; healthy jobs are collapsed. Example:
    `pollwatch report --db pollwatch.sqlite -o incident.html --job e-10`.
    """
    try:
        with progress_bar("drawing jobs", show_from=PROGRESS_FROM) as on_progress:
            stats = write_report(db, output, session=session, job_prefix=job_prefix, full=full,
                                 on_progress=on_progress)
    except (StorageError, ReportError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(stats.line())
