"""`pollwatch analyze` and `pollwatch diff`: recordings through the live engine, offline."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pollwatch.cli.options import db_option, format_option
from pollwatch.cli.progress import progress_bar


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@db_option(help="Database to add the analysis to (as a new session).")
@click.option("--label", default=None, help="Session label (default: the file names).")
@click.option("--contract", "contract_path", default=None, type=click.Path(dir_okay=False),
              help="Recognise jobs with what this contract file teaches (fields, words, templates, id fields).")
@format_option
def analyze(paths: tuple[str, ...], db: str, label: str | None, contract_path: str | None, fmt: str) -> None:
    """Analyse recorded traffic with the same engine as the live proxy.

    PATHS are recordings in any format pollwatch reads, told apart by content: mitmproxy flow
    files, HAR (browser dev tools, Polly.js; `_fromCache` honoured), VCR.py, Ruby VCR, go-vcr
    and Betamax cassettes; folders are walked. The result is one new session in the database:
    query it with `pollwatch jobs` and `pollwatch warnings`.
    """
    from pollwatch.sources.analysis import analyze_recordings
    from pollwatch.contract_file import contract_config

    config = contract_config(contract_path) if contract_path else None
    with progress_bar("analysing", show_from=1000) as on_progress:
        summary = analyze_recordings(paths, db, config=config, label=label, on_progress=on_progress)
    if fmt == "json":
        click.echo(summary.model_dump_json(indent=2))
        return
    for path in summary.synthetic_times:
        Console(stderr=True).print(f"[yellow]note[/]: {path} has no timestamps; exchanges were spaced 1 s apart")
    click.echo(summary.line())


@click.command("diff")
@click.argument("failing")
@click.argument("known_good")
@db_option(help="Database for references without a source.")
@click.option("--worker-log", "worker_logs", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Worker log(s) to join to RECORDING:JOB sides (a database side shows the worker events it holds).")
@format_option
def diff_command(failing: str, known_good: str, db: str, worker_logs: tuple[str, ...], fmt: str) -> None:
    """Compare a failing job with a known-good one and show where they first diverge.

    Each job is JOB (an id prefix in --db), DB.sqlite:JOB, or RECORDING:JOB (a flow file,
    HAR or cassette, analysed first). Worker log events joined to a job (`pollwatch
    worker-log`, or --worker-log for recordings) are listed on the same time axis. Example:
    `pollwatch diff recordings/cached-status.flows:e-1001 recordings/healthy.flows:e-1001`
    """
    from pollwatch.sources.diff import diff

    result = diff(failing, known_good, db, worker_logs)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    _print_diff(result)


def _print_diff(result: dict[str, Any]) -> None:
    console = Console(highlight=False)
    a, b = result["a"], result["b"]
    first = result["first_divergence"]
    table = Table(title="failing (A) vs known-good (B)")
    table.add_column("#", justify="right")
    for side in ("A", "B"):
        for column in ("+s", "status", "state", "cache"):
            table.add_column(f"{side} {column}", overflow="fold")
    for row in result["timeline"]:
        cells = []
        for side in ("a", "b"):
            poll, other = row[side], row["b" if side == "a" else "a"]
            for field in ("offset", "status", "state", "cache"):
                value = "" if poll is None else str(poll[field] if field != "offset" else f"{poll[field]:+.2f}")
                differs = field != "offset" and (other is None or poll is None or poll[field] != other[field])
                value += "*" if field == "state" and poll and poll.get("behind_worker") else ""
                cells.append(f"[bold red]{value}[/]" if differs and value else value)
        table.add_row(str(row["poll"]), *cells)
    for label, side in (("A", a), ("B", b)):
        console.print(f"[bold]{label}[/] {side['label']}: job {side['job_id']}, {side['polls']} poll(s), "
                      f"states {' → '.join(side['states']) or '-'}\n    {side['status_url']}")
    console.print(table)
    _print_worker(console, a, b)
    if first is None:
        console.print("[green]no divergence[/]: same status URL shape, host, cache headers, status codes, states and timing")
    else:
        console.print(f"[bold red]first divergence[/]: {first['aspect']} at {first['where']}: "
                      f"A {first['a']!r} vs B {first['b']!r}")
        for other in result["divergences"][1:]:
            console.print(f"  also: {other['aspect']} at {other['where']}: A {other['a']!r} vs B {other['b']!r}")


def _print_worker(console: Console, a: dict[str, Any], b: dict[str, Any]) -> None:
    """Each side's worker log events on the polls' axis, and how long its client trailed the worker."""
    if not (a["worker_events"] or b["worker_events"]):
        return
    table = Table(title="worker log (offsets from each job's creation, as the polls above)")
    for column in ("side", "+s", "state", "word", "source", "message"):
        table.add_column(column, overflow="fold")
    for label, side in (("A", a), ("B", b)):
        for e in side["worker_events"]:
            table.add_row(label, f"{e['offset']:+.2f}", escape(e["state"] or "-"), escape(e["state_word"] or ""),
                          escape(e["source"] or ""), escape(e["message"] or ""))
    console.print(table)
    for label, side in (("A", a), ("B", b)):
        if side["worker_end"] is not None:
            behind = side["polls_behind_worker"]
            console.print(f"{label}: the worker logged its end at {side['worker_end']:+.2f}s; "
                          + (f"[bold red]{behind} poll(s) after it were answered non-terminal[/] (marked *)"
                             if behind else "no poll after it was answered non-terminal"))


COMMANDS: tuple[click.Command, ...] = (analyze, diff_command)
