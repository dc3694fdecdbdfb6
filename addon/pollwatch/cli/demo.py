"""`pollwatch demo`: the sample job API with real polling faults, watched live."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pollwatch.cli.options import db_option
from pollwatch.cli.render import SEVERITY_STYLE


def command_name(tool: str) -> str:
    """How this user runs `tool` (pollwatch, sqlite-utils, mitmweb): its name when PATH finds it,
    else its path beside the pollwatch they ran, as they typed it (a fresh clone has them only in
    `.venv/bin`)."""
    if shutil.which(tool):
        return tool
    beside = Path(sys.argv[0]).with_name(tool)
    return str(beside) if beside.is_file() else tool


@click.command()
@click.option("--scenario", "names", multiple=True, metavar="NAME",
              help="Run only this fault mode (repeatable). Default: all of them, one job each.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@db_option("pollwatch-demo.sqlite", "Database to fill (replaced).")
@click.option("--record", default="pollwatch-demo.flows", show_default=True, type=click.Path(dir_okay=False),
              help="mitmproxy flow file to record the traffic into (replaced).")
@click.option("--worker-log", default="pollwatch-demo.worker.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="The sample API's worker log (JSON lines, replaced), followed by the proxy; empty for none.")
def demo(names: tuple[str, ...], list_only: bool, db: str, record: str, worker_log: str) -> None:
    """Watch pollwatch catch real polling bugs: a sample job API with faults, real clients,
    a real mitmdump with the addon, all on loopback."""
    from pollwatch.demo import SCENARIOS
    from pollwatch.demo.runner import LineFeed, run_demo

    console = Console(highlight=False)
    if list_only:
        table = Table(title="demo scenarios")
        for column in ("scenario", "what happens", "pollwatch should say"):
            table.add_column(column, overflow="fold")
        for s in SCENARIOS.values():
            options = f" [dim](--set {' '.join(s.proxy_options)})[/]" if s.proxy_options else ""
            codes = ", ".join([*s.expected_codes, *s.worker_codes])
            table.add_row(s.name, escape(s.description) + options, codes or "[green]nothing[/]")
        console.print(table)
        return
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise click.BadParameter(f"unknown scenario {', '.join(unknown)}; see `pollwatch demo --list`",
                                 param_hint="--scenario")
    chosen = [SCENARIOS[n] for n in names] if names else list(SCENARIOS.values())

    def show(level: str, text: str) -> None:
        console.print(f"    [{SEVERITY_STYLE[level]}]{level:<7}[/] {text}", soft_wrap=True)

    def announce(scenario) -> None:
        console.print(f"[bold]▶ {scenario.name}[/]  [dim]{scenario.description}[/]")

    console.print(f"[bold]pollwatch demo[/]: {len(chosen)} scenario(s) through mitmdump + pollwatch, on 127.0.0.1\n")
    run = run_demo(chosen, db=Path(db), record=Path(record), on_line=LineFeed(show), on_scenario=announce,
                   worker_log=Path(worker_log) if worker_log else None)
    console.print()
    console.print(_demo_table(run))
    console.print(f"\nDatabase: [bold]{Path(db).resolve()}[/]")
    if run.record is not None:
        console.print(f"Recording: [bold]{Path(record).resolve()}[/]")
    console.print("\nNext, try:")
    recorded = (
        (f"pollwatch analyze {record} --db offline.sqlite", "the recording through the same engine, offline"),
        (f"pollwatch diff {record}:{_first_flagged(run)} {record}:{_first_healthy(run)}",
         "a failing job next to a healthy one"),
        (f"mitmweb -r {record}", "the recorded flows, marked and commented, in mitmproxy's UI"),
    ) if run.record is not None else ()
    for command, what in (
        (f"pollwatch jobs --db {db}", "the jobs with their state sequences (the newest 100; --limit 0: all)"),
        (f"pollwatch warnings --db {db}", "the findings with their fixes (--format json for scripts)"),
        (f"pollwatch show {_first_flagged(run)} --db {db}", "one job's timeline and a support block for the incident"),
        (f"pollwatch report --db {db} -o pollwatch-demo.html", "every timeline as pictures in one HTML file"),
        (f'sqlite-utils query {db} "select * from finding_counts"', "plain SQL over the tables and views"),
        *recorded,
    ):
        tool, _, rest = command.partition(" ")
        command = f"{command_name(tool)} {rest}"
        console.print(f"  [cyan]{escape(command)}[/]\n      [dim]{what}[/]")
    if not run.ok:
        raise SystemExit(1)


def _first_flagged(run) -> str:
    return next((j["job_id"] for r in run.results if r.codes for j in r.jobs), "JOB")


def _first_healthy(run) -> str:
    return next((j["job_id"] for r in run.results if not r.codes for j in r.jobs), "JOB")


def _demo_table(run) -> Table:
    table = Table(title="what pollwatch found")
    for column in ("scenario", "states", "expected", "found", ""):
        table.add_column(column, overflow="fold")
    for r in run.results:
        states = " | ".join(" → ".join(j["states"]) or "-" for j in r.jobs) or "-"
        found = ", ".join(sorted(r.codes)) or "[green]nothing[/]"
        verdict = "[green]✓[/]" if r.ok else f"[red]✗ {escape(_why_not(r))}[/]"
        table.add_row(r.scenario.name, states, ", ".join(sorted(r.expected)) or "nothing", found, verdict)
    return table


def _why_not(result) -> str:
    """What went wrong with a scenario, in a few words."""
    parts = [result.error or ""]
    if result.missing:
        parts.append("missing " + ", ".join(sorted(result.missing)))
    if result.short_of:
        parts.append(f"client never reached {result.short_of}")
    return " ".join(p for p in parts if p)


COMMANDS: tuple[click.Command, ...] = (demo,)
