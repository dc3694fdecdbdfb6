"""Record ordinary synchronous CRUD traffic into recordings/crud-sync.flows through a real
mitmdump (-w), analyse it offline and write recordings/crud-sync.expected.json.

The point of this recording is a negative one: a plain REST resource (201 with an id and a
Location, repeated GETs of the same note, ETag revalidation, PUT/PATCH, DELETE, a 404 after
delete) is not an asynchronous job. The script fails loudly, and writes no expected file, if
pollwatch reports any job or any finding on it, live or offline.

Run with `.venv/bin/python scripts/record_crud.py` (from the project root);
`--expected-only` keeps the recorded traffic and only re-derives the expected file.
Fixed loopback ports (API 18190, proxy 18191) keep the recorded URLs stable between
regenerations.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import read_through_mitmdump  # noqa: E402  (the tests read recordings the same way)

from pollwatch.demo.proxy import ProxyProcess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings"
NAME = "crud-sync"
DESCRIPTION = ("Synchronous CRUD of a plain REST resource (201 with id and Location, repeated GETs with "
               "ETag revalidation, PUT, PATCH, DELETE, 404 after delete); not a job, nothing to report.")
PORTS = {"api": 18190, "proxy": 18191}
IDLE_AFTER = 2.5  # seconds of quiet after the client stops, as a real capture would have
REREAD_GAP = 0.3  # seconds between repeated GETs of the same note


# --- the REST server: a notes collection kept in memory -------------------------------------------

class Notes:
    """The resource collection; every write is done by the time its response is sent."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1001)
        self.lock = threading.Lock()

    @staticmethod
    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @staticmethod
    def etag(note: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(note, sort_keys=True).encode()).hexdigest()[:16]
        return f'"{digest}"'

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            note_id = f"n-{next(self.ids)}"
            stamp = self.now()
            note = {"id": note_id, "title": fields.get("title", ""), "body": fields.get("body", ""),
                    "tags": list(fields.get("tags", [])), "author": fields.get("author", "anonymous"),
                    "revision": 1, "created_at": stamp, "updated_at": stamp}
            self.items[note_id] = note
            return dict(note)

    def update(self, note_id: str, fields: dict[str, Any], *, replace: bool) -> dict[str, Any] | None:
        with self.lock:
            note = self.items.get(note_id)
            if note is None:
                return None
            editable = ("title", "body", "tags", "author")
            if replace:  # PUT: the representation is replaced; missing fields fall back to defaults
                note |= {"title": fields.get("title", ""), "body": fields.get("body", ""),
                         "tags": list(fields.get("tags", [])), "author": fields.get("author", note["author"])}
            else:  # PATCH (merge patch): only the fields sent change
                note |= {k: v for k, v in fields.items() if k in editable}
            note["revision"] += 1
            note["updated_at"] = self.now()
            return dict(note)


class NotesHandler(BaseHTTPRequestHandler):
    """`/api/notes` collection and `/api/notes/{id}` items, JSON over HTTP/1.1 keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "notes-api/2.4"
    sys_version = ""
    disable_nagle_algorithm = True
    notes: Notes  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Quiet: the script prints its own summary."""

    def reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status not in (204, 304) and self.command != "HEAD":
            self.wfile.write(body)

    def read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def route(self) -> tuple[str, str | None]:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if parts[:2] != ["api", "notes"] or len(parts) > 3:
            return "none", None
        return ("item", parts[2]) if len(parts) == 3 else ("collection", None)

    def not_found(self) -> None:
        self.reply(404, {"error": {"code": "not_found", "message": "no such note"}},
                   {"Cache-Control": "no-cache"})

    def do_GET(self) -> None:
        kind, note_id = self.route()
        if kind == "collection":
            with self.notes.lock:
                items = [dict(n) for n in self.notes.items.values()]
            self.reply(200, {"items": items, "count": len(items), "next": None},
                       {"Cache-Control": "private, no-cache"})
        elif kind == "item":
            with self.notes.lock:
                note = dict(self.notes.items[note_id]) if note_id in self.notes.items else None
            if note is None:
                self.not_found()
                return
            etag = self.notes.etag(note)
            headers = {"ETag": etag, "Cache-Control": "private, max-age=0", "Last-Modified": self.http_date(note)}
            if etag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]:
                self.reply(304, None, headers)
            else:
                self.reply(200, note, headers)
        else:
            self.not_found()

    def do_POST(self) -> None:
        kind, _ = self.route()
        if kind != "collection":
            self.not_found()
            return
        fields = self.read_json()
        if fields is None or not fields.get("title"):
            self.reply(422, {"error": {"code": "invalid", "message": "title is required"}})
            return
        note = self.notes.create(fields)
        self.reply(201, note, {"Location": f"/api/notes/{note['id']}", "ETag": self.notes.etag(note),
                               "Cache-Control": "no-store"})

    def _write(self, *, replace: bool) -> None:
        kind, note_id = self.route()
        fields = self.read_json()
        if kind != "item":
            self.not_found()
            return
        if fields is None:
            self.reply(400, {"error": {"code": "bad_json", "message": "body must be a JSON object"}})
            return
        note = self.notes.update(note_id, fields, replace=replace)
        if note is None:
            self.not_found()
            return
        self.reply(200, note, {"ETag": self.notes.etag(note), "Cache-Control": "no-store"})

    def do_PUT(self) -> None:
        self._write(replace=True)

    def do_PATCH(self) -> None:
        self._write(replace=False)

    def do_DELETE(self) -> None:
        kind, note_id = self.route()
        with self.notes.lock:
            gone = self.notes.items.pop(note_id, None) if kind == "item" else None
        if gone is None:
            self.not_found()
        else:
            self.reply(204)

    @staticmethod
    def http_date(note: dict[str, Any]) -> str:
        stamp = datetime.fromisoformat(note["updated_at"].replace("Z", "+00:00"))
        return stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")


class NotesServer:
    """The notes API on 127.0.0.1:`port`, served from a daemon thread."""

    def __init__(self, port: int) -> None:
        handler = type("Handler", (NotesHandler,), {"notes": Notes()})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "NotesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --- the client: what an ordinary app does with such an API ----------------------------------------

def expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise SystemExit(f"{response.request.method} {response.request.url}: expected {status}, "
                         f"got {response.status_code} {response.text[:200]}")
    return response


def crud_session(client: httpx.Client, base: str) -> int:
    """Create, read (repeatedly, with revalidation), list, update, re-read, delete; the number of
    exchanges made."""
    made = 0

    def call(method: str, path: str, status: int, **kw: Any) -> httpx.Response:
        nonlocal made
        made += 1
        return expect(client.request(method, base + path, **kw), status)

    call("GET", "/api/notes", 200)
    drafts = [
        {"title": "Groceries", "body": "oat milk, lemons, rye bread", "tags": ["home"], "author": "ada"},
        {"title": "Standup notes", "body": "- release train on Thursday\n- review the flaky test",
         "tags": ["work", "meetings"], "author": "ada"},
        {"title": "Book list", "body": "The Dispossessed; Middlemarch", "tags": ["reading"], "author": "ada"},
    ]
    notes = []
    for draft in drafts:
        created = call("POST", "/api/notes", 201, json=draft)
        note = created.json()
        assert created.headers["Location"] == f"/api/notes/{note['id']}", created.headers
        notes.append(note)

    etags = {}
    for note in notes:  # repeated GETs of the same resource: plain re-reads, then revalidation
        path = f"/api/notes/{note['id']}"
        first = call("GET", path, 200)
        etags[note["id"]] = first.headers["ETag"]
        time.sleep(REREAD_GAP)
        call("GET", path, 200)
        time.sleep(REREAD_GAP)
        call("GET", path, 304, headers={"If-None-Match": etags[note["id"]]})
        time.sleep(REREAD_GAP)
        call("GET", path, 304, headers={"If-None-Match": etags[note["id"]]})

    listing = call("GET", "/api/notes", 200).json()
    assert listing["count"] == 3, listing

    put_note, patch_note, gone_note = (n["id"] for n in notes)
    call("PUT", f"/api/notes/{put_note}", 200,
         json={"title": "Groceries (Saturday)", "body": "oat milk, lemons, rye bread, coffee", "tags": ["home"],
               "author": "ada"})
    call("PATCH", f"/api/notes/{patch_note}", 200, json={"body": "- release train moved to Friday"},
         headers={"Content-Type": "application/merge-patch+json"})

    for note_id in (put_note, patch_note):  # the old ETag no longer matches; the new one does
        path = f"/api/notes/{note_id}"
        fresh = call("GET", path, 200, headers={"If-None-Match": etags[note_id]})
        assert fresh.json()["revision"] == 2, fresh.json()
        time.sleep(REREAD_GAP)
        call("GET", path, 304, headers={"If-None-Match": fresh.headers["ETag"]})
        time.sleep(REREAD_GAP)
        call("GET", path, 200)

    call("DELETE", f"/api/notes/{gone_note}", 204)
    call("GET", f"/api/notes/{gone_note}", 404)
    assert call("GET", "/api/notes", 200).json()["count"] == 2
    return made


# --- recording and expectations ---------------------------------------------------------------------

def record(workdir: Path) -> Path:
    """Run the CRUD session through a real mitmdump with pollwatch, writing the flow file; returns
    the live database (checked for jobs too)."""
    flows = OUT / f"{NAME}.flows"
    live = workdir / f"{NAME}.live.sqlite"
    with NotesServer(PORTS["api"]) as api, \
            ProxyProcess(live, record=flows, extra_args=["-p", str(PORTS["proxy"])]) as proxy, \
            httpx.Client(proxy=proxy.url, trust_env=False, timeout=15,
                         headers={"Accept": "application/json", "User-Agent": "notes-app/3.1"}) as client:
        made = crud_session(client, api.url)
        time.sleep(IDLE_AFTER)
    print(f"{NAME}: recorded {made} exchange(s) into {flows.relative_to(ROOT)}")
    return live


def report(db: Path) -> dict[str, list]:
    """Everything pollwatch stored about jobs, polls and findings in `db`."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
        rows = {}
        for table, query in (("jobs", "select * from jobs"),
                             ("polls", "select kind, matched_by, method, url, status, raw_state from polls"),
                             ("findings", "select code, message from findings")):
            rows[table] = [dict(r) for r in conn.execute(query)] if table in tables else []
    return rows


def fail_if_anything(db: Path, where: str) -> None:
    rows = report(db)
    if rows["jobs"] or rows["findings"] or rows["polls"]:
        lines = [f"{NAME}: pollwatch took synchronous CRUD traffic for jobs ({where}, {db}):"]
        for table, found in rows.items():
            lines.append(f"  {table}: {len(found)}")
            lines += [f"    {json.dumps(row, default=str)}" for row in found]
        raise SystemExit("\n".join(lines))


def expectations(workdir: Path) -> dict:
    flows = OUT / f"{NAME}.flows"
    db = workdir / f"{NAME}.offline.sqlite"
    read_through_mitmdump(flows, db)
    fail_if_anything(db, "offline, mitmdump -nr")
    with sqlite3.connect(db) as conn:
        codes = sorted({row[0] for row in conn.execute("select code from findings")})
        jobs = [{"job_id": job_id, "states": json.loads(states)}
                for job_id, states in conn.execute("select job_id, states from jobs order by created_at, key")]
    return {"scenario": NAME, "description": DESCRIPTION, "must_include": [], "codes": codes, "jobs": jobs}


def main(args: list[str]) -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if "--expected-only" not in args:
            fail_if_anything(record(Path(tmp)), "live proxy")
        expected = expectations(Path(tmp))
    (OUT / f"{NAME}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"{NAME:<18} {len(expected['jobs'])} job(s)  {', '.join(expected['codes']) or '-'}")


if __name__ == "__main__":
    main(sys.argv[1:])
