"""`pollwatch export`: the client's side of each job for other tools (OpenTelemetry traces)."""

from __future__ import annotations

import click

from pollwatch.cli.options import db_option, format_option, session_option


@click.command("export")
@click.option("--otlp", "target", required=True, metavar="FILE|URL",
              help="Write OTLP/JSON lines to FILE, or send OTLP/HTTP protobuf to a loopback URL "
                   "such as http://127.0.0.1:4318/v1/traces (other hosts are refused).")
@db_option()
@session_option
@click.option("--job", default=None, metavar="JOB", help="Only this job: an id, id prefix or key (as for `show`).")
@click.option("--service-name", default="pollwatch", show_default=True,
              help="The service.name the traces carry in a viewer.")
@format_option
def export(target: str, db: str, session: str | None, job: str | None, service_name: str, fmt: str) -> None:
    """Export each job as an OpenTelemetry trace, to open beside the worker's spans.

    \b
    One trace per job: a root span `job ID`, a client span for the creating
    request and for each poll (method, URL as stored, status code, state,
    cache verdict, served_by, request/operation ids), state transitions and
    findings as span events. Trace ids are derived from the job key, so
    exporting twice gives the same traces; when the client sent a W3C
    traceparent, the job's trace uses its trace id and so joins the worker's.

    \b
    Examples:
      pollwatch export --otlp jobs.otlp.jsonl            # Collector file-exporter format
      pollwatch export --otlp http://127.0.0.1:4318      # a local Collector or Jaeger (OTLP/HTTP)
      pollwatch export --otlp jobs.jsonl --job e-1007 --db incident.sqlite
    """
    from pollwatch.otel.export import export_otlp

    summary = export_otlp(db, target, session=session, job=job, service_name=service_name)
    if fmt == "json":
        click.echo(summary.model_dump_json(indent=2))
        return
    rejected = f"; the receiver rejected {summary.rejected_spans} span(s)" if summary.rejected_spans else ""
    click.echo(f"exported {summary.jobs} job(s) as {summary.jobs} trace(s), {summary.spans} span(s) "
               f"to {summary.target}{rejected}")


COMMANDS = (export,)
