"""`pollwatch contract infer` and `pollwatch contract check`: write down what an API's jobs do, and
check a release's traffic against it (exit 1 on drift, for CI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from pollwatch.cli.options import format_option
from pollwatch.cli.render import table
from pollwatch.errors import ConfigError
from pollwatch.files import atomic_output, check_output


@click.group("contract")
def contract_group() -> None:
    """Job contracts: what is created how, polled where, and which states end a job.

    \b
    pollwatch contract infer RECORDING... -o contract.yaml
    pollwatch contract check RECORDING... --contract contract.yaml   (exit 1 on drift)
    """


@contract_group.command("infer")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Contract file to write ('-': standard output).")
@click.option("--contract", "base", default=None, type=click.Path(dir_okay=False),
              help="Recognise jobs with what this contract teaches (custom fields, words, templates).")
def infer_command(paths: tuple[str, ...], output: str, base: str | None) -> None:
    """Write the contract the recordings show, one section per endpoint family.

    PATHS are recordings (flow files, HAR, VCR cassettes) or folders. The file is commented and
    sorted, so it can be kept in review and diffed; `contract check` reads it back.
    """
    from pollwatch.sources.analysis import infer_contract
    from pollwatch.contract_file import contract_config, dump_contract

    if output != "-":
        check_output(output, ConfigError)  # a FIFO or a device is refused before any work
    contract, files, jobs = infer_contract(paths, config=contract_config(base))
    name = Path(output).name if output != "-" else "contract.yaml"
    text = dump_contract(contract, name=name, sources=[Path(f).name for f in files])
    if output == "-":
        click.echo(text, nl=False)
        return
    with atomic_output(output, ConfigError, "the contract") as temporary:
        temporary.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}: {len(contract.families)} endpoint family(ies) from {jobs} job(s) "
               f"in {len(files)} file(s)", err=True)


@contract_group.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--contract", "contract_path", required=True, type=click.Path(dir_okay=False),
              help="The contract to check against (written by `contract infer`, maybe edited).")
@format_option
def check_command(paths: tuple[str, ...], contract_path: str, fmt: str) -> None:
    """Compare recordings with a contract; list every drift and exit 1 if there is any.

    Drift is a family the contract does not describe, a new or vanished state word, a terminal
    state it does not list, a new status URL shape or host, a new creation status code, or
    changed cache headers on status responses. Families the recordings do not exercise are
    named, but are not drift.
    """
    from pollwatch.sources.analysis import check_contract
    from pollwatch.contract_file import load_contract

    result = check_contract(paths, load_contract(contract_path))
    if fmt == "json":
        click.echo(json.dumps(result.model_dump(), indent=2, sort_keys=True))
    else:
        _print(result, contract_path)
    sys.exit(1 if result.drift else 0)


def _print(result, contract_path: str) -> None:
    console = Console(highlight=False)
    looked = f"{result.jobs} job(s) in {len(result.files)} file(s), {len(result.families)} family(ies)"
    if result.drift:
        rows = [[d.family, d.aspect, d.change] for d in result.drift]
        console.print(table(f"{len(result.drift)} drift(s) from {contract_path} ({looked})",
                            ["family", "aspect", "change"], rows))
    else:
        console.print(f"[green]no drift[/] from {contract_path} ({looked})")
    for name in result.unexercised:
        console.print(f"[dim]not exercised: {name}[/]")


COMMANDS: tuple[click.Command, ...] = (contract_group,)
