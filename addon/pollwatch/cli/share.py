"""`pollwatch sanitize`, `scan` and `prune`: sharing recordings safely and keeping databases small.

The sanitizer and scanner load only when their command runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table

from pollwatch.cli.options import db_option, format_option
from pollwatch.errors import RulesError
from pollwatch.files import check_input
from pollwatch.share.secrets import Hit, Rules

rules_option = click.option("--rules", "rules_file", type=click.Path(dir_okay=False), default=None,
                            help="Extra rules (YAML, JSON or TOML): headers, params, keys, patterns, forbidden, "
                                 "keep_headers.")


def _rules(path: str | None) -> Rules:
    """The rules file's rules; a FIFO or a device is refused before it is opened."""
    return Rules.load(check_input(path, RulesError) if path else None)


def _show_hits(hits: Sequence[Hit], fmt: str, title: str) -> None:
    """JSON for scripts, a table for people; values are never printed, only masked previews."""
    if fmt == "json":
        click.echo(json.dumps([h.as_dict() for h in hits], indent=2))
        return
    table = Table(title=f"{len(hits)} {title}")
    for column in ("file", "flow", "location", "rule", "preview"):
        table.add_column(column, overflow="fold")
    for h in hits:
        flow = str(h.flow) if h.flow is not None else (h.flow_id or "-")
        table.add_row(h.file, flow, h.location, h.rule, h.preview)
    Console().print(table)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Sanitized copy to write (never the input).")
@click.option("--output-format", "output_format", type=click.Choice(["flows", "har"]), default=None,
              help="Kind of copy to write. Default: har if OUT ends in .har, else a mitmproxy flow file.")
@click.option("--pseudonymize", is_flag=True,
              help="Also replace job ids, request ids, UUIDs and hostnames with consistent keyed-hash stand-ins.")
@rules_option
@click.option("--dry-run", is_flag=True, help="List what would be replaced, and where; write nothing.")
@format_option
def sanitize(source: str, output: str | None, output_format: str | None, pseudonymize: bool, rules_file: str | None,
             dry_run: bool, fmt: str) -> None:
    """Write a copy of a recording that is safe to share.

    SOURCE is anything `pollwatch analyze` reads (mitmproxy flow file, HAR, VCR cassette).
    Credentials, cookies, tokens, personal data and secret-looking strings are replaced by
    REDACTED; status codes, cache headers, timestamps, job and request ids and state words stay,
    so the copy analyses exactly like the original. The copy is scanned before it is kept:
    if anything is left, nothing is written and the exit status is 1.
    """
    from pollwatch.share.sanitize import sanitize as run

    if output is None and not dry_run:
        raise click.UsageError("give the output file with -o OUT (or use --dry-run)")
    result = run(source, None if dry_run else output, fmt=output_format, pseudonymize=pseudonymize,
                 rules=_rules(rules_file), dry_run=dry_run)
    if dry_run:
        _show_hits(result.hits, fmt, f"value(s) {source} would lose")
    click.echo(result.line(), err=dry_run and fmt == "json")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@rules_option
@format_option
def scan(paths: tuple[str, ...], rules_file: str | None, fmt: str) -> None:
    """Look for secrets in recordings and pollwatch databases.

    PATHS are mitmproxy flow files, HAR files, VCR cassettes (folders are walked) and pollwatch
    SQLite databases. Uses the same detectors as `sanitize`. Exit status 1 if anything is
    found, 0 if clean.
    """
    from pollwatch.share.scan import scan_paths

    hits = scan_paths(paths, _rules(rules_file))
    _show_hits(hits, fmt, "possible secret(s)")
    if hits:
        raise SystemExit(1)


@click.command()
@db_option()
@click.option("--older-than", "older_than", default=None, metavar="AGE",
              help="Sessions last active longer ago than this: 30d, 12h, 90m, 2w.")
@click.option("--session", default=None, help="Only this session id.")
@click.option("--dry-run", is_flag=True, help="Say what would go; delete nothing.")
def prune(db: str, older_than: str | None, session: str | None, dry_run: bool) -> None:
    """Delete old capture sessions with all their jobs, polls, transitions and findings, and
    reclaim the disk space (WAL checkpoint + VACUUM)."""
    from pollwatch.store.prune import parse_age
    from pollwatch.store.prune import prune as run
    from pollwatch.store.reading import existing_database

    existing_database(db)  # an empty file is refused, not made a database
    report = run(db, older_than=parse_age(older_than) if older_than else None, session=session, dry_run=dry_run)
    for s in report.sessions:
        click.echo(f"  {s.id}  {s.label or '-'}")
    click.echo(report.line())


COMMANDS: tuple[click.Command, ...] = (sanitize, scan, prune)
