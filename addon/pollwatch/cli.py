"""`pollwatch` command line: run the proxy with the addon, and read what it captured."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .cli_query import QUERY_COMMANDS, SEVERITY_STYLE, db_option, format_option
from .replay import EXTRA_CHOICES
from .storage import StorageError

SCRIPT = Path(__file__).with_name("mitmdump_script.py")

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    """


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@db_option
@click.option("--port", "-p", default=8080, show_default=True, help="Proxy listen port.")
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Proxy listen address.")
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def run(db: str, port: int, listen_host: str, mitmdump_args: Sequence[str]) -> None:
    """Start mitmdump with the pollwatch addon. Extra arguments go to mitmdump.

    Point your client at http://LISTEN-HOST:PORT as its HTTP(S) proxy. Example:
    `pollwatch run --port 8080 --set pollwatch_filter='~d api.example.com'`.
    """
    from mitmproxy.tools.main import mitmdump

    args = ["-s", str(SCRIPT), "--listen-host", listen_host, "-p", str(port), "--set", f"pollwatch_db={db}",
            *mitmdump_args]
    sys.exit(mitmdump(args))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--db", default="pollwatch.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="Database to add the analysis to (as a new session).")
@click.option("--label", default=None, help="Session label (default: the file names).")
@format_option
def analyze(paths: tuple[str, ...], db: str, label: str | None, fmt: str) -> None:
    """Analyse recorded traffic with the same engine as the live proxy.

    PATHS are mitmproxy flow files, HAR exports (browser dev tools; `_fromCache` honoured) and
    VCR.py / pytest-recording cassettes; folders are walked. The result is one new session in
    the database: query it with `pollwatch jobs` and `pollwatch warnings`.
    """
    from .analysis import analyse
    from .progress import progress_bar
    from .readers import ReadError

    try:
        with progress_bar("analysing", show_from=1000) as on_progress:
            summary = analyse(paths, db, label=label, on_progress=on_progress)
    except (ReadError, StorageError) as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "json":
        click.echo(summary.model_dump_json(indent=2))
        return
    for path in summary.synthetic_times:
        Console(stderr=True).print(f"[yellow]note[/]: {path} has no timestamps; exchanges were spaced 1 s apart")
    click.echo(summary.line())


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@click.option("--db", default="pollwatch-replay.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="Database for what pollwatch sees during the replay.")
@click.option("--port", "-p", default=8080, show_default=True, help="Proxy listen port.")
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Proxy listen address.")
@click.option("--extra", type=click.Choice(EXTRA_CHOICES), default="kill",
              show_default=True, help="What a request gets once the recording has no response left for it.")
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def replay(recording: str, db: str, port: int, listen_host: str, extra: str, mitmdump_args: Sequence[str]) -> None:
    """Serve RECORDING's responses (mitmproxy server replay) with pollwatch watching.

    Run the client against the proxy with the recorded URLs: the recorded backend answers,
    the fixed client should show no findings, the unfixed one the recorded ones. Recorded
    responses to one request are used up in order; a client that polls more often than the
    recording did gets --extra once they run out (kill: the connection is closed).
    """
    from .replay import mitmdump_replay

    sys.exit(mitmdump_replay(recording, db=db, port=port, listen_host=listen_host, extra=extra, script=SCRIPT,
                             more=mitmdump_args))


@main.command("diff")
@click.argument("failing")
@click.argument("known_good")
@click.option("--db", default="pollwatch.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="Database for references without a source.")
@format_option
def diff_command(failing: str, known_good: str, db: str, fmt: str) -> None:
    """Compare a failing job with a known-good one and show where they first diverge.

    Each job is JOB (an id prefix in --db), DB.sqlite:JOB, or RECORDING:JOB (a flow file,
    HAR or cassette, analysed first). Example:
    `pollwatch diff recordings/cached-status.flows:e-1001 recordings/healthy.flows:e-1001`
    """
    from .diff import DiffError, diff
    from .readers import ReadError

    try:
        result = diff(failing, known_good, db)
    except (DiffError, ReadError, StorageError) as exc:
        raise click.ClickException(str(exc)) from exc
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
                cells.append(f"[bold red]{value}[/]" if differs and value else value)
        table.add_row(str(row["poll"]), *cells)
    for label, side in (("A", a), ("B", b)):
        console.print(f"[bold]{label}[/] {side['label']}: job {side['job_id']}, {side['polls']} poll(s), "
                      f"states {' → '.join(side['states']) or '-'}\n    {side['status_url']}")
    console.print(table)
    if first is None:
        console.print("[green]no divergence[/]: same status URL shape, host, cache headers, status codes, states and timing")
    else:
        console.print(f"[bold red]first divergence[/]: {first['aspect']} at {first['where']}: "
                      f"A {first['a']!r} vs B {first['b']!r}")
        for other in result["divergences"][1:]:
            console.print(f"  also: {other['aspect']} at {other['where']}: A {other['a']!r} vs B {other['b']!r}")


@main.command()
@click.option("--scenario", "names", multiple=True, metavar="NAME",
              help="Run only this fault mode (repeatable). Default: all of them, one job each.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option("--db", default="pollwatch-demo.sqlite", show_default=True, type=click.Path(dir_okay=False),
              help="Database to fill (replaced).")
@click.option("--record", default="pollwatch-demo.flows", show_default=True, type=click.Path(dir_okay=False),
              help="mitmproxy flow file to record the traffic into (replaced).")
def demo(names: tuple[str, ...], list_only: bool, db: str, record: str) -> None:
    """Watch pollwatch catch real polling bugs: a sample job API with faults, real clients,
    a real mitmdump with the addon, all on loopback."""
    from .demo import SCENARIOS
    from .demo.runner import LineFeed, run_demo

    console = Console(highlight=False)
    if list_only:
        table = Table(title="demo scenarios")
        for column in ("scenario", "what happens", "pollwatch should say"):
            table.add_column(column, overflow="fold")
        for s in SCENARIOS.values():
            table.add_row(s.name, s.description, ", ".join(s.expected_codes) or "[green]nothing[/]")
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
    run = run_demo(chosen, db=Path(db), record=Path(record), on_line=LineFeed(show), on_scenario=announce)
    console.print()
    console.print(_demo_table(run))
    console.print(f"\nDatabase: [bold]{Path(db).resolve()}[/]\nRecording: [bold]{Path(record).resolve()}[/]\n")
    console.print("Next, try:")
    for command, what in (
        (f"pollwatch jobs --db {db}", "every job with its state sequence"),
        (f"pollwatch warnings --db {db}", "every finding with its fix (--format json for scripts)"),
        (f"pollwatch show {_first_flagged(run)} --db {db}", "one job's timeline and a support block for the incident"),
        (f"pollwatch report --db {db} -o pollwatch-demo.html", "every timeline as pictures in one HTML file"),
        (f'sqlite-utils query {db} "select * from finding_counts"', "plain SQL over the tables and views"),
        (f"pollwatch analyze {record} --db offline.sqlite", "the recording through the same engine, offline"),
        (f"pollwatch diff {record}:{_first_flagged(run)} {record}:{_first_healthy(run)}",
         "a failing job next to a healthy one"),
        (f"mitmweb -r {record}", "the recorded flows, marked and commented, in mitmproxy's UI"),
    ):
        console.print(f"  [cyan]{command}[/]\n      [dim]{what}[/]")
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
        verdict = "[green]✓[/]" if r.ok else f"[red]✗ {r.error or ''}{' missing ' + ', '.join(sorted(r.missing)) if r.missing else ''}[/]"
        table.add_row(r.scenario.name, states, ", ".join(r.scenario.expected_codes) or "nothing", found, verdict)
    return table


from .cli_report import report  # noqa: E402  (the command lives in its own module)

for command in (*QUERY_COMMANDS, report):  # jobs, warnings, show, sessions, datasette, report
    main.add_command(command)

from .cli_share import prune, sanitize, scan  # noqa: E402  (sharing commands live in their own module)

for command in (sanitize, scan, prune):
    main.add_command(command)
