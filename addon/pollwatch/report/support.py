"""The support block as text: what `pollwatch show` prints for pasting into an incident, and what
the live job view copies with its button. One function, so both say the same."""

from __future__ import annotations

from typing import Any

from pollwatch.core.verification import CHECK_HEADER


def support_text(support: dict[str, Any]) -> str:
    """The support block as plain text: the facts someone on the server side needs, together."""
    terminal_at = f"  at {support['terminal_at']}" if support["terminal_at"] else ""
    ids = "; ".join(f"{name}={', '.join(values)}" for name, values in support["ids_seen"].items()) or "-"
    lines = [
        f"job:            {support['job_id']}  (key {support['job_key']}, session {support['session_id']})",
        f"status URL:     {support['status_url'] or '-'}",
        f"created by:     {support['creating_request'] or 'not captured (first seen on a poll)'}  at {support['created_at']}",
        f"ids seen:       {ids}",
        f"last state:     {support['last_state'] or '-'}",
        f"terminal state: {support['terminal_state'] or 'none'}{terminal_at}",
        "transitions:",
        *(f"  {t['at']}  {t['from'] or '(start)'} -> {t['to']}" for t in support["transitions"]),
        "findings:       " + (", ".join(f"{f['code']} ({f['severity']}, x{f['count']})"
                                         for f in support["findings"]) or "none"),
    ]
    if support.get("worker_transitions"):  # the worker's view, beside the client's transitions above
        lines += ["worker transitions:",
                  *(f"  {t['at']}  {t['from'] or '(start)'} -> {t['to']}  ({t['source']})"
                    for t in support["worker_transitions"])]
    if support.get("checks"):  # requests the server saw from pollwatch, not from the client
        lines.append("origin checks:  " + ", ".join(f"{result} x{n}" for result, n in support["checks"].items())
                     + f"  (sent by pollwatch with {CHECK_HEADER}: 1)")
    return "\n".join(lines)
