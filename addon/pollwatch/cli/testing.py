"""`pollwatch variants` and `pollwatch regress`: failure cases of a healthy recorded job, as files
and as a ready pytest module (the fixtures are in pollwatch.testing.plugin)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pollwatch.cli.options import format_option
from pollwatch.errors import ConfigError
from pollwatch.files import check_output
from pollwatch.testing.cases import CASES, VariantFile

case_option = click.option("--case", "cases", multiple=True, type=click.Choice(list(CASES)),
                           help="Only this case (repeat for several; default: all).")
slow_option = click.option("--slow-polls", type=click.IntRange(min=1), default=None,
                           help="Waiting polls in the `slow` variant (default: 3 x recorded, at least 20; "
                                "each asks for Retry-After).")


keep_option = click.option("--keep-credentials", is_flag=True,
                           help="Copy Authorization, Cookie and Set-Cookie headers as recorded (default: "
                                "replaced by a placeholder, since variants usually get committed).")


def _derive(reference: str, out: Path, cases: tuple[str, ...], slow_polls: int | None, keep_credentials: bool
            ) -> tuple[list[VariantFile], list[str]]:
    from pollwatch.testing.variants import derive

    return derive(reference, out, [n for n in CASES if not cases or n in cases], slow_polls=slow_polls,
                  keep_credentials=keep_credentials)


def _print(written: list[VariantFile], skipped: list[str], out: Path, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"directory": str(out), "variants": [v.model_dump(mode="json") for v in written],
                               "skipped": skipped}, indent=2))
        return
    table = Table(title=f"{len(written)} variant(s) of job {written[0].job_id if written else '-'} in {out}")
    for column in ("variant", "status polls", "ends on", "analysis finds"):
        table.add_column(column)
    for v in written:
        table.add_row(v.name, str(v.status_polls), v.case.final_state, ", ".join(v.case.codes) or "-")
    console = Console(highlight=False)
    console.print(table)
    for v in written:
        console.print(f"[bold]{v.name}[/]: a correct client must {v.case.must}")
    for note in skipped:
        console.print(f"[yellow]skipped[/] {note}")


@click.command("variants")
@click.argument("reference", metavar="RECORDING[:JOB]")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@case_option
@slow_option
@keep_option
@format_option
def variants(reference: str, out: str, cases: tuple[str, ...], slow_polls: int | None, keep_credentials: bool,
             fmt: str) -> None:
    """Derive failure variants of a healthy recorded job (a mitmproxy flow file).

    Writes NAME.flows and NAME.json into OUT for each case: slow (many more waiting polls, with
    Retry-After), failed (the vendor's failed state and an error body), expired (410 Gone),
    cached (Cache-Control: max-age=30), etag-stuck (one ETag for every state), reordered (an
    older answer arrives last). URLs, headers and body shapes stay as recorded. NAME.json says
    what a correct client must do and the state it ends on. Credentials (Authorization, Cookie,
    Set-Cookie) are replaced by a placeholder unless --keep-credentials. JOB defaults to the first job that
    ends succeeded. Serve one with `pollwatch replay OUT/cached.flows`, or in pytest with the
    `pollwatch_variant("cached")` fixture. Example:
    `pollwatch variants recordings/healthy.flows:e-1001 -o tests/variants`
    """
    folder = Path(out)
    written, skipped = _derive(reference, folder, cases, slow_polls, keep_credentials)
    _print(written, skipped, folder, fmt)


@click.command("regress")
@click.argument("reference", metavar="RECORDING[:JOB]")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="The pytest module to write, e.g. tests/test_async_contract.py.")
@click.option("--force", is_flag=True, help="Overwrite an existing module and variants folder.")
@case_option
@slow_option
@keep_option
@format_option
def regress(reference: str, out: str, force: bool, cases: tuple[str, ...], slow_polls: int | None,
            keep_credentials: bool, fmt: str) -> None:
    """Write a pytest module that runs your client against every failure variant of a job.

    The variants go beside the module (OUT without .py, plus `_variants`); the module has one
    test per variant and one function to fill in, `run_client(base_url, proxy_url, ca_bundle)`,
    between FILL IN markers: run your client against the recorded origin through the proxy and
    return the state it ends on. Example:
    `pollwatch regress recordings/healthy.flows -o tests/test_async_contract.py`
    """
    from pollwatch.testing.regress import write_module

    module = Path(out)
    check_output(module, ConfigError)  # a FIFO or a device is refused before any work
    if module.exists() and not force:
        raise ConfigError(f"{module} exists; pass --force to overwrite it")
    folder = module.with_name(module.stem + "_variants")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; the variants go in a folder of that name (move the file away)")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ConfigError(f"{folder} exists; pass --force to overwrite the variants in it")
    written, skipped = _derive(reference, folder, cases, slow_polls, keep_credentials)
    if not written:
        raise ConfigError(f"{reference}: no variant could be derived ({'; '.join(skipped)})")
    write_module(module, written, folder)
    _print(written, skipped, folder, fmt)
    if fmt != "json":
        click.echo(f"wrote {module}: fill in run_client() between the FILL IN markers, then run pytest {module}")


COMMANDS: tuple[click.Command, ...] = (variants, regress)
