"""End to end with a real third-party job server: a Celery worker and Flower's HTTP API, driven by
httpx through a real mitmdump with the pollwatch addon, as a Flower user would: create a task with
`POST /api/task/async-apply/<name>`, poll `GET /api/task/result/<task-id>` until a terminal Celery
state, revoke a running task with `POST /api/task/revoke/<task-id>?terminate=true`. pollwatch gets
no hints (no options): each task must be a job tracked to succeeded, failed or cancelled, with no
error-level finding.

Everything runs on loopback in a temporary folder. The result backend is SQLite
(`db+sqlite:///…`). The broker is kombu's filesystem transport rather than `sqla+sqlite://`:
kombu's SQLAlchemy transport has no fanout exchange (its bindings live in each process's memory),
so Celery's remote control never reaches the worker — Flower answers a revoke with 200 "Revoked"
but the task runs on to SUCCESS — and no worker events reach Flower. The filesystem transport keeps
its bindings in files, so revoke and events work and it is just as light (see data/celery_app.py
for the one fix it needs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="celery is not installed (it is in the 'test' extra)")
pytest.importorskip("flower", reason="flower is not installed (it is in the 'test' extra)")
import httpx  # noqa: E402

from helpers import live_job_rows  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
TERMINAL = {"SUCCESS", "FAILURE", "REVOKED"}
EXCHANGES = ("celery", "celery.pidbox", "reply.celery.pidbox", "celeryev")
"""The exchanges that the worker and Flower bind queues to: tasks, remote control and its replies, events."""
START_TIMEOUT_S = 60        # worker ready and Flower answering
TASK_TIMEOUT_S = 30         # one task from creation to a terminal state
POLL_INTERVAL_S = 0.25
STOP_TIMEOUT_S = 10         # SIGTERM (warm shutdown), then SIGKILL to the whole process group
pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A process in its own session (prefork children included), output in a log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = cwd / f"{name}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def running(self) -> bool:
        """Without reaping it: until stop() waits for it, its pid (the group's id) stays ours."""
        if self.process.returncode is not None:
            return False
        return os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None

    def stop(self) -> None:
        """SIGTERM (a worker's warm shutdown), then SIGKILL to whatever is left of the group (a
        worker's pool children, or the leader if it hung), then reap the leader."""
        if self.running():
            os.kill(self.process.pid, signal.SIGTERM)  # not terminate(): it would reap the leader
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=STOP_TIMEOUT_S)


class Flower:
    def __init__(self, url: str, worker: Service, flower: Service) -> None:
        self.url, self.worker, self.flower = url, worker, flower

    def logs(self) -> str:
        return f"--- worker log ---\n{self.worker.output()}\n--- flower log ---\n{self.flower.output()}"


def wait_until(ready: Callable[[], bool], services: list[Service], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        dead = [s for s in services if not s.running()]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name} log ---\n{s.output()}" for s in services)
            raise RuntimeError(f"{what}: " + (f"{dead[0].name} exited" if dead else "timed out") + f"\n{logs}")
        time.sleep(0.2)


def flower_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthcheck", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def flower(tmp_path_factory):
    """A Celery worker (prefork, one child, so a running task can be terminated) and Flower on
    127.0.0.1, sharing a filesystem broker and a SQLite result backend in a temporary folder."""
    folder = tmp_path_factory.mktemp("celery")
    for sub in ("queue", "control", "staging", "processed"):
        (folder / "broker" / sub).mkdir(parents=True)
    # kombu's filesystem transport creates an exchange's binding file by truncating it before it
    # locks it, so a process reading the table meanwhile gets an empty file, and the worker dies
    # of a JSONDecodeError ("Unrecoverable error"). Empty tables made beforehand avoid that race.
    for exchange in EXCHANGES:
        (folder / "broker" / "control" / f"{exchange}.exchange").write_text("[]")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(DATA), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "POLLWATCH_CELERY_BROKER_FOLDER": str(folder / "broker"),
        "POLLWATCH_CELERY_BACKEND": f"db+sqlite:///{folder / 'results.sqlite'}",
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    celery = [sys.executable, "-m", "celery", "-A", "celery_app"]
    services: list[Service] = []
    try:
        worker = Service("worker", [*celery, "worker", "--pool=prefork", "--concurrency=1", "--hostname=pollwatch@localhost",
                                    "--loglevel=INFO", "--without-mingle", "--without-gossip"], folder, env)
        services.append(worker)
        wait_until(lambda: " ready." in worker.output(), services, "the Celery worker did not get ready")
        port = free_port()
        server = Service("flower", [*celery, "flower", "--address=127.0.0.1", f"--port={port}", "--persistent=False",
                                    f"--db={folder / 'flower.db'}"], folder, env)
        services.append(server)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: flower_answers(url), services, "Flower's HTTP API did not answer")
        yield Flower(url, worker, server)
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture(scope="module")
def exchanges() -> list[dict[str, Any]]:
    """Every exchange the client made, for the failure messages."""
    return []


@pytest.fixture(scope="module")
def client(flower, proxy, exchanges):
    def keep(response: httpx.Response) -> None:
        response.read()
        exchanges.append({
            "method": response.request.method, "url": str(response.request.url), "status": response.status_code,
            "headers": {k: v for k, v in response.headers.items()
                        if k.lower() in ("content-type", "location", "cache-control", "etag", "last-modified",
                                         "expires", "retry-after", "date", "link")},
            "body": response.text[:300]})

    with httpx.Client(base_url=flower.url, proxy=proxy.url, trust_env=False, timeout=15,
                      event_hooks={"response": [keep]}) as http:
        yield http


def create(client: httpx.Client, task: str, args: list[Any]) -> str:
    response = client.post(f"/api/task/async-apply/{task}", json={"args": args})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("state") in ("PENDING", "RECEIVED", "STARTED"), body  # a quick worker may have begun
    return body["task-id"]


def poll_until_done(client: httpx.Client, flower: Flower, task_id: str,
                    on_state: Callable[[str], None] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Poll Flower's result endpoint until a terminal Celery state; returns the states seen (in
    order, repeats folded) and the last body."""
    seen: list[str] = []
    deadline = time.monotonic() + TASK_TIMEOUT_S
    while True:
        assert flower.worker.running() and flower.flower.running(), "a Celery process died\n" + flower.logs()
        response = client.get(f"/api/task/result/{task_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if not seen or seen[-1] != body["state"]:
            seen.append(body["state"])
        if body["state"] in TERMINAL:
            return seen, body
        assert time.monotonic() < deadline, \
            f"task {task_id} still {body['state']} after {TASK_TIMEOUT_S}s: {seen}\n" + flower.logs()
        if on_state is not None:
            on_state(body["state"])
        time.sleep(POLL_INTERVAL_S)


def database_dump(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        parts = ["jobs: job_id, status_url, create_method, create_url, create_status, states, terminal_state, polls"]
        parts += [repr(r) for r in conn.execute(
            "select job_id, status_url, create_method, create_url, create_status, states, terminal_state, polls from jobs")]
        parts += ["polls: kind, matched_by, method, url, status, raw_state, state"]
        parts += [repr(r) for r in conn.execute("select kind, matched_by, method, url, status, raw_state, state from polls")]
        parts += ["findings: code, severity, message"]
        parts += [repr(r) for r in conn.execute("select code, severity, message from findings")]
    return "\n".join(parts)


def explain(proxy, exchanges: list[dict[str, Any]], task_id: str) -> str:
    mine = [e for e in exchanges if task_id in e["url"] or task_id in e["body"]]
    return ("\n--- exchanges of task " + task_id + " ---\n" + "\n".join(json.dumps(e) for e in mine)
            + "\n--- pollwatch database ---\n" + database_dump(proxy.db))


def tracked(proxy, exchanges, task_id: str, task: str, terminal_state: str) -> dict[str, Any]:
    """The job pollwatch recorded for a task, checked: created by the async-apply POST, tracked to
    `terminal_state`, no error-level finding."""
    rows = live_job_rows(proxy.db, task_id, lambda r: r["job"]["terminal_state"] is not None
                         and len([p for p in r["polls"] if p["kind"] == "poll"]) >= (r["job"]["polls"] or 0))
    why = explain(proxy, exchanges, task_id)
    job = rows["job"]
    assert job is not None, f"no job {task_id} in pollwatch's database" + why
    assert job["terminal_state"] == terminal_state, why
    assert json.loads(job["states"])[-1] == terminal_state, why
    assert job["create_method"] == "POST" and job["create_url"].endswith(f"/api/task/async-apply/{task}"), why
    assert job["polls"] >= 1, why
    with sqlite3.connect(proxy.db) as conn:
        errors = list(conn.execute("select code, message from findings where severity = 'error'"))
    assert errors == [], why
    return rows


def test_successful_task_is_tracked_to_succeeded(client, flower, proxy, exchanges):
    task_id = create(client, "tasks.add_slowly", [2, 3])
    states, body = poll_until_done(client, flower, task_id)
    assert states[-1] == "SUCCESS" and body["result"] == 5, (states, body)
    tracked(proxy, exchanges, task_id, "tasks.add_slowly", "succeeded")


def test_failing_task_is_tracked_to_failed(client, flower, proxy, exchanges):
    task_id = create(client, "tasks.explode", ["boom from the pollwatch test"])
    states, body = poll_until_done(client, flower, task_id)
    assert states[-1] == "FAILURE" and "boom from the pollwatch test" in body["result"], (states, body)
    tracked(proxy, exchanges, task_id, "tasks.explode", "failed")


def test_revoked_task_is_tracked_to_cancelled(client, flower, proxy, exchanges):
    task_id = create(client, "tasks.sleep_long", [TASK_TIMEOUT_S * 2])
    revoked: list[httpx.Response] = []

    def revoke_once_started(state: str) -> None:
        if state == "STARTED" and not revoked:
            revoked.append(client.post(f"/api/task/revoke/{task_id}", params={"terminate": "true"}))

    states, body = poll_until_done(client, flower, task_id, revoke_once_started)
    assert revoked and revoked[0].status_code == 200, revoked and revoked[0].text
    assert "STARTED" in states and states[-1] == "REVOKED", (states, body)
    tracked(proxy, exchanges, task_id, "tasks.sleep_long", "cancelled")
