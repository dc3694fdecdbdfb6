"""The view's HTTP side: a request target in, a reply out. Routes:

- `GET /` the page (one HTML document, inline script and style, a fresh CSP nonce each time)
- `GET /api/jobs` the session's jobs, newest first: `state`, `code`, `host` (what `pollwatch jobs`'
  options of those names mean), `q` (part of a job id), `offset`, `limit` (at most 500)
- `GET /api/jobs/{key}` one job: `pollwatch show --format json`, plus the timeline (SVG), the
  support block as text and what each finding code means
- `GET /api/findings` the session's findings, newest first: `code`, `severity`, `job`, `offset`,
  `limit`

Rows have exactly the fields of `pollwatch jobs/warnings --format json`. Every reply says
`Cache-Control: no-store`: a tool that finds cached status responses must not serve one. Kept
free of mitmproxy, so it is tested as it is, and the addon only carries requests to it.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from pollwatch.errors import StorageError, first_line
from pollwatch.live.data import LiveData
from pollwatch.live.page import render_page, security_policy
from pollwatch.live.rows import Filters
from pollwatch.store.query import SEVERITIES

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
JOB_PREFIX = "/api/jobs/"
COMMON_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                  ("Referrer-Policy", "no-referrer"))


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class BadRequest(ValueError):
    """A parameter the API cannot use; its text says which and why."""


def json_reply(status: int, payload: Any) -> Reply:
    body = json.dumps(payload, sort_keys=True).encode("utf-8")
    return Reply(status, body, (("Content-Type", "application/json; charset=utf-8"), *COMMON_HEADERS))


class ViewApp:
    """Answers the view's requests from `data`; `respond` may block (it reads SQLite), so the
    addon calls it from a worker thread."""

    def __init__(self, data: LiveData) -> None:
        self.data = data

    def respond(self, method: str, target: str) -> Reply:
        """The reply to `method target` (target: path and query as the client sent them)."""
        path, _, query = target.partition("?")
        path = unquote(path)
        if method not in ("GET", "HEAD"):
            reply = json_reply(405, {"error": f"{method} is not served here; the view only reads"})
            return Reply(reply.status, reply.body, (*reply.headers, ("Allow", "GET, HEAD")))
        try:
            reply = self._route(path, parse_qs(query))
        except BadRequest as exc:
            reply = json_reply(400, {"error": str(exc)})
        except (StorageError, sqlite3.Error) as exc:  # a locked or broken file: say so, try again later
            reply = json_reply(503, {"error": f"cannot read the database: {first_line(exc)}"})
        return Reply(reply.status, b"", reply.headers) if method == "HEAD" else reply

    def _route(self, path: str, params: dict[str, list[str]]) -> Reply:
        if path in ("/", "/index.html"):
            return self._page()
        if path == "/favicon.ico":  # browsers ask for one; there is none, and that is no error
            return Reply(204, b"", COMMON_HEADERS)
        if path == "/api/jobs":
            filters = Filters(state=_text(params, "state"), code=_text(params, "code"), host=_text(params, "host"),
                              q=_text(params, "q"))
            return json_reply(200, self.data.jobs(filters, *_window(params)))
        if path.startswith(JOB_PREFIX) and len(path) > len(JOB_PREFIX):
            key = path[len(JOB_PREFIX):]
            detail = self.data.job(key)
            if detail is None:
                return json_reply(404, {"error": f"no job with key {key!r} in this session or the database"})
            return json_reply(200, detail)
        if path == "/api/findings":
            severity = _text(params, "severity")
            if severity is not None and severity not in SEVERITIES:
                raise BadRequest(f"severity must be one of {', '.join(SEVERITIES)}")
            offset, limit = _window(params)
            return json_reply(200, self.data.findings(code=_text(params, "code"), severity=severity,
                                                 job=_text(params, "job"), offset=offset, limit=limit))
        return json_reply(404, {"error": f"nothing at {path!r}: the view serves /, /api/jobs, /api/jobs/KEY, /api/findings"})

    @staticmethod
    def _page() -> Reply:
        nonce = secrets.token_urlsafe(16)
        return Reply(200, render_page(nonce).encode("utf-8"),
                     (("Content-Type", "text/html; charset=utf-8"),
                      ("Content-Security-Policy", security_policy(nonce)), *COMMON_HEADERS))


def _text(params: dict[str, list[str]], name: str) -> str | None:
    """The parameter's last value; absent or blank is None (no filter)."""
    values = params.get(name)
    return values[-1].strip() or None if values else None


def _number(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = _text(params, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def _window(params: dict[str, list[str]]) -> tuple[int, int]:
    """`offset` and `limit` of a list request."""
    return _number(params, "offset", 0, 0, 10**9), _number(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
