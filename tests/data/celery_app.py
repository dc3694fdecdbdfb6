"""The Celery app of tests/test_celery_flower.py: three tasks for a real worker, driven through
Flower's HTTP API. The broker and the result backend come from the environment, so the test can
put them in its temporary folder:

    POLLWATCH_CELERY_BROKER_FOLDER  a folder for kombu's filesystem broker (pollwatchfs://)
    POLLWATCH_CELERY_BACKEND        e.g. db+sqlite:////tmp/x/results.sqlite

    celery -A celery_app worker ...   /   celery -A celery_app flower ...   (from this folder)

The broker is kombu's filesystem transport, not `sqla+sqlite://`: kombu's SQLAlchemy transport has
no fanout exchanges (its bindings live in each process's memory), so Celery's remote control
(Flower's revoke) never reaches the worker and no worker events reach Flower. The filesystem
transport keeps its bindings in files, so both work; `pollwatchfs://` is that transport with
one fix: a message file is written aside and renamed into the queue folder, because kombu writes
it in place and a consumer can read it empty in between (the worker then dies of a
JSONDecodeError, "Unrecoverable error").
"""

from __future__ import annotations

import os
import time
import uuid

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

FOLDER = os.environ.get("POLLWATCH_CELERY_BROKER_FOLDER", "")
BACKEND = os.environ.get("POLLWATCH_CELERY_BACKEND", "cache+memory://")


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """As kombu's, but atomic: write in the staging folder, then rename into the queue folder."""
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staged = os.path.join(FOLDER, "staging", name)
        with open(staged, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(staged, os.path.join(self.data_folder_out, name))


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["pollwatchfs"] = f"{__name__}:Transport"

app = Celery("celery_app", broker="pollwatchfs://" if FOLDER else "memory://", backend=BACKEND)
app.conf.update(
    task_track_started=True,          # STARTED between PENDING and the terminal state
    worker_send_task_events=True,     # Flower's task info comes from events
    task_send_sent_event=True,
    result_extended=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if FOLDER:
    app.conf.broker_transport_options = {
        "data_folder_in": os.path.join(FOLDER, "queue"),
        "data_folder_out": os.path.join(FOLDER, "queue"),
        "control_folder": os.path.join(FOLDER, "control"),
        "store_processed": True,      # consumed messages go here rather than through the system temp folder
        "processed_folder": os.path.join(FOLDER, "processed"),
        "polling_interval": 0.1,
    }


@app.task(name="tasks.add_slowly")
def add_slowly(a: int, b: int, seconds: float = 1.0) -> int:
    """Sleeps about a second, then returns a + b."""
    time.sleep(seconds)
    return a + b


@app.task(name="tasks.explode")
def explode(message: str) -> None:
    """Fails at once."""
    raise ValueError(message)


@app.task(name="tasks.sleep_long")
def sleep_long(seconds: float = 60.0) -> str:
    """Runs long enough to be revoked (terminated) while it runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    return "not revoked"
