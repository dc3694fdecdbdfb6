"""`pollwatch worker-log`: worker logs beside the polls the client saw."""

from __future__ import annotations

import json

import click
from rich.console import Console

from pollwatch.cli.options import db_option, format_option
from pollwatch.cli.progress import progress_bar
from pollwatch.logs import FieldNames, WorkerLogFormat, WorkerLogRead


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        word, sep, state = value.partition("=")
        if not sep or not word.strip() or not state.strip():
            raise click.BadParameter(f"{value!r} is not WORD=STATE", param_hint="--state-word")
        out[word.strip()] = state.strip()
    return out


@click.command("worker-log")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@db_option(help="Database to add the worker events to (jobs from `run`/`analyze`, before or after).")
@click.option("--log-format", default="auto", show_default=True, metavar="NAME",
              help="jsonl, logfmt, otlp (OpenTelemetry OTLP/JSON logs or spans), or auto (told apart by "
                   "content); --pattern reads plain text.")
@click.option("--pattern", default=None, metavar="REGEX",
              help="Plain text: a regular expression whose named groups are the fields, e.g. "
                   r"'(?P<ts>\S+) job=(?P<job_id>\S+) (?P<state>\w+)'.")
@click.option("--job-field", multiple=True, metavar="NAME", help="Field(s) with the job id (default: job_id, jobId, job, id).")
@click.option("--operation-field", multiple=True, metavar="NAME",
              help="Field(s) with operation/request ids (default: operation_id, request_id, traceparent, trace_id, ...).")
@click.option("--state-field", multiple=True, metavar="NAME", help="Field(s) with the state (default: state, status, event).")
@click.option("--time-field", multiple=True, metavar="NAME",
              help="Field(s) with the time: ISO 8601, epoch s/ms/µs/ns (default: ts, time, timestamp, @timestamp, "
                   "asctime).")
@click.option("--state-word", multiple=True, metavar="WORD=STATE", help="Extra state words (Baked=succeeded).")
@click.option("--worker-clock-offset", default=0.0, show_default=True, metavar="SECONDS",
              help="Added to every worker timestamp: the worker's clock is this many seconds behind the proxy's.")
@click.option("--worker-grace", default=0.1, show_default=True, metavar="SECONDS",
              help="How long a status may trail the worker's terminal log line before it counts.")
@click.option("--label", default=None, help="Label of this run (default: the file names).")
@format_option
def worker_log(paths: tuple[str, ...], db: str, log_format: str, pattern: str | None, job_field: tuple[str, ...],
               operation_field: tuple[str, ...], state_field: tuple[str, ...], time_field: tuple[str, ...],
               state_word: tuple[str, ...], worker_clock_offset: float, worker_grace: float, label: str | None,
               fmt: str) -> None:
    """Read worker logs and join them to the jobs in the database.

    Events join a job by its id, or by an operation/request id (or a traceparent's trace id)
    the proxy saw on the job's exchanges. The findings client-behind-worker,
    worker-ahead-of-status, stale-status (behind the worker) and worker-log-unlinked are
    recomputed over the whole database, so ingesting before or after `analyze` is the same.
    """
    from pollwatch.core.worker import WorkerSettings
    from pollwatch.logs import RegexFormat
    from pollwatch.store.worker import ingest

    given = {"job": job_field, "operation": operation_field, "state": state_field, "time": time_field}
    names = FieldNames(**{k: list(v) for k, v in given.items() if v}, clock_offset=worker_clock_offset,
                       states=_pairs(state_word))
    chosen = RegexFormat(pattern) if pattern else log_format
    read = _read_with_progress(paths, names, chosen)
    result = ingest(db, read.events, settings=WorkerSettings(grace=worker_grace), label=label or ", ".join(paths),
                    run_settings={"worker_clock_offset": worker_clock_offset, "fields": names.model_dump()})
    bad = read.bad_line()
    if fmt == "json":
        click.echo(json.dumps(result.model_dump() | {"files": read.files, "formats": read.formats, "skipped": read.skipped,
                                                     "bad_lines": read.bad,
                                                     "bad_example": bad}, indent=2))
        return
    for note in ([f"{p}: empty, skipped" for p in read.skipped] + ([bad] if bad else [])):
        Console(stderr=True).print(f"[yellow]note[/]: {note}", markup=True, highlight=False)
    found = ", ".join(f"{result.findings.get(s, 0)} {s}" for s in ("error", "warning", "info"))
    again = f" ({result.duplicates} already stored, skipped)" if result.duplicates else ""
    click.echo(f"read {result.events} worker event(s){again} from {len(read.files)} file(s); {result.linked} joined a job; "
               f"worker findings: {found}; run {result.session_id} in {result.db}")


def _read_with_progress(paths: tuple[str, ...], names: FieldNames, chosen: str | WorkerLogFormat) -> WorkerLogRead:
    """One file at a time, so a long list shows progress; unreadable lines summed over all files."""
    from pollwatch.logs import read_worker_logs

    total = WorkerLogRead()
    with progress_bar("reading worker logs", show_from=5) as on_progress:
        for done, path in enumerate(paths, 1):
            part = read_worker_logs([path], names=names, fmt=chosen)
            total.events += part.events
            total.files += part.files
            total.skipped += part.skipped
            for name, n in part.formats.items():
                total.formats[name] = total.formats.get(name, 0) + n
            if part.bad_example is not None and total.bad_example is None:
                total.bad_example = part.bad_example
            total.bad += part.bad
            on_progress(done, len(paths))
    return total


COMMANDS: tuple[click.Command, ...] = (worker_log,)
