"""Failure variants of one recorded healthy job: the same URLs, headers and body shapes, with only
what each case (cases.py) needs changed. The core finds the job's creation and polls, so any
contract pollwatch recognises can be varied; a case the job cannot carry (a `failed` body for a
job whose state is its status code) is skipped with a note rather than invented.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import http, io

from pollwatch.core.redact import redact_url, safe_text, safe_value
from pollwatch.core.tracking import Tracker
from pollwatch.errors import ConfigError, ReadError
from pollwatch.files import atomic_output, open_input
from pollwatch.mitm.flows import observation_from_flow, request_url
from pollwatch.testing.cases import CASES, VariantFile, load_variant

RESULT_KEYS = ("result", "resultUrl", "result_url", "href_result", "resourceLocation", "response", "output")
"""Body fields that hand over a finished job's result: a failed or expired job has none."""
CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")
"""Request headers a variant does not copy from the recording (it may be committed), nor Set-Cookie."""
REDACTED = "REDACTED-by-pollwatch"
SPARE_ANSWERS = 5
"""Copies of the last status answer served after the recording's: a real server keeps answering."""


class SkipCase(Exception):
    """This job cannot carry the case (said why); the other variants are still written."""


@dataclass
class JobFlows:
    """One job of a recording: its creation, status polls up to the first terminal one, and the
    flows after it that belong to no other job (a result download)."""

    job_id: str
    create: http.HTTPFlow
    waiting: list[http.HTTPFlow]
    terminal: http.HTTPFlow
    state_source: str
    terminal_word: str
    after: list[http.HTTPFlow] = field(default_factory=list)

    @property
    def status_polls(self) -> list[http.HTTPFlow]:
        return [*self.waiting, self.terminal]


def parse_reference(reference: str) -> tuple[Path, str | None]:
    """`RECORDING` or `RECORDING:JOB` (a path that exists wins over a split at the last colon)."""
    if Path(reference).exists():
        return Path(reference), None
    path, sep, job = reference.rpartition(":")
    if sep and Path(path).exists():
        return Path(path), job or None
    raise ReadError(f"{reference}: no such recording")


def read_flows(path: Path) -> list[http.HTTPFlow]:
    with open_input(path) as f:  # a FIFO or a device is refused, never waited on
        try:
            return [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is one line for the user
            raise ReadError(f"{path}: not a readable mitmproxy flow file ({exc})") from exc


def find_job(flows: Sequence[http.HTTPFlow], job_id: str | None, source: Path) -> JobFlows:
    """The job (by id, else the first that succeeded) with its flows, read by the live core."""
    tracker, owner, polls = Tracker(), {}, {}
    jobs: dict[str, Any] = {}
    for flow in flows:
        update = tracker.observe(observation_from_flow(flow))
        for each in update.all() if update is not None else []:
            if each.poll is not None and each.job is not None:
                owner[each.poll.flow_id] = each.job.job_id
                polls[each.poll.flow_id] = each.poll
                jobs[each.job.job_id] = each.job
    chosen = next((j for j in jobs.values() if job_id is None and j.terminal_state == "succeeded"), None)
    if job_id is not None:
        chosen = (jobs.get(job_id) or next((j for i, j in jobs.items() if safe_value(i) == job_id), None)  # as shown
                  or next((j for i, j in jobs.items() if i.startswith(job_id)), None))
    if chosen is None:
        raise ReadError(f"{source}: no job {job_id!r}" if job_id else f"{source}: no job that ends succeeded")
    if chosen.terminal_state != "succeeded" or chosen.create_flow_id is None:
        raise ReadError(f"{source}: job {chosen.job_id} must be created and end succeeded to derive variants "
                        f"(it ends {chosen.terminal_state or 'without a terminal state'})")
    mine = [f for f in flows if owner.get(f.id) == chosen.job_id]
    create = next(f for f in mine if f.id == chosen.create_flow_id)
    status = [f for f in mine if f is not create and polls[f.id].kind == "poll"]
    end = next(i for i, f in enumerate(status) if polls[f.id].state == "succeeded")
    terminal = status[end]
    after = [f for f in flows[flows.index(terminal) + 1:] if f.id not in owner]
    record = polls[terminal.id]
    return JobFlows(chosen.job_id, create, status[:end], terminal, record.state_source or "",
                    record.raw_state or "", after)


# --- editing flows ------------------------------------------------------------------------------

def clone(flow: http.HTTPFlow, shift: float = 0.0) -> http.HTTPFlow:
    """A copy with an id of its own, moved `shift` seconds later."""
    copy = flow.copy()
    copy.id = str(uuid.uuid4())
    move(copy, shift)
    return copy


def move(flow: http.HTTPFlow, shift: float) -> None:
    """Shift the exchange in time, its `Date` and `Expires` with it (an old Date is a finding)."""
    if not shift:
        return
    for message in (flow.request, flow.response):
        if message is not None:
            message.timestamp_start += shift
            if message.timestamp_end is not None:
                message.timestamp_end += shift
    for name in ("Date", "Expires"):
        value = flow.response.headers.get(name) if flow.response is not None else None
        when = parse_http_date(value) if value else None
        if when is not None:
            flow.response.headers[name] = formatdate(when + shift, usegmt=True)


def parse_http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def json_body(flow: http.HTTPFlow) -> Any:
    try:
        return json.loads(flow.response.get_text(strict=False) or "null") if flow.response else None
    except ValueError:
        return None


def set_json(flow: http.HTTPFlow, document: Any) -> None:
    set_text(flow, json.dumps(document, separators=(",", ":")))


def set_text(flow: http.HTTPFlow, text: str) -> None:
    """A new body, and a new ETag if it had one: the recorded ETag named the recorded body."""
    flow.response.text = text
    if "ETag" in flow.response.headers:
        flow.response.headers["ETag"] = f'"pollwatch-{hashlib.sha256(flow.response.content or b"").hexdigest()[:16]}"'


def word_like(recorded: str, word: str) -> str:
    """`word` in the recorded word's casing: Succeeded -> Failed, SUCCEEDED -> FAILED."""
    if recorded.isupper():
        return word.upper()
    return word.capitalize() if recorded[:1].isupper() else word


def with_state(job: JobFlows, flow: http.HTTPFlow, word: str, error: dict[str, Any]) -> http.HTTPFlow:
    """The terminal answer telling `word` in the vendor's shape; result links dropped, `error` added."""
    document = json_body(flow)
    if not isinstance(document, dict):
        raise SkipCase(f"the status of job {job.job_id} is not a JSON document")
    if job.state_source == "done":
        document = {k: v for k, v in document.items() if k != "response"} | {"done": True, "error": error}
        set_json(flow, document)
        return flow
    path = job.state_source.partition("+")[0]
    if not path or path in ("status-code",) or not path.replace(".", "").replace("_", "").isalnum():
        raise SkipCase(f"job {job.job_id} says its state with {path or 'nothing'}, not a body field")
    *parents, leaf = path.removeprefix("body.").split(".")
    holder = document
    for key in parents:
        holder = holder.get(key) if isinstance(holder, dict) else None
    if not isinstance(holder, dict) or leaf not in holder:
        raise SkipCase(f"job {job.job_id}'s terminal answer has no field {path}")
    holder[leaf] = word_like(job.terminal_word, word)
    for key in RESULT_KEYS:
        holder.pop(key, None)
    if holder.get("error") is None:
        holder["error"] = error
    set_json(flow, document)
    return flow


def retry_after(flows: Iterable[http.HTTPFlow]) -> str | None:
    values = [f.response.headers.get("Retry-After") for f in flows if f.response is not None]
    return next((v for v in reversed(values) if v), None)


# --- the cases ----------------------------------------------------------------------------------

def slow(job: JobFlows, slow_polls: int) -> list[http.HTTPFlow]:
    """Many more polls of the last waiting state; each asks for the recorded Retry-After (1 s if
    none was recorded) and the recording waits that long, as a patient client would."""
    if not job.waiting:
        raise SkipCase(f"job {job.job_id} was done at its first poll; there is no waiting answer to repeat")
    wait = retry_after(job.waiting) or "1"
    pause = float(wait) if wait.replace(".", "", 1).isdigit() else 1.0
    last, added = job.waiting[-1], []
    step = last.request.timestamp_start - (job.waiting[-2].request.timestamp_start if len(job.waiting) > 1
                                           else job.create.request.timestamp_start)
    for n in range(max(slow_polls - len(job.waiting), 1)):
        extra = clone(last, step + n * pause)
        extra.response.headers["Retry-After"] = wait
        added.append(extra)
    shift = step + len(added) * pause
    return [job.create, *job.waiting, *added, clone(job.terminal, shift), *(clone(f, shift) for f in job.after)]


def failed(job: JobFlows) -> list[http.HTTPFlow]:
    error = {"code": 13, "message": "the job failed"} if job.state_source == "done" else \
        {"code": "JobFailed", "message": "the job failed"}
    return [job.create, *job.waiting, with_state(job, clone(job.terminal), "failed", error)]


def expired(job: JobFlows) -> list[http.HTTPFlow]:
    gone = clone(job.terminal)
    gone.response.status_code, gone.response.reason = 410, "Gone"
    if job.state_source == "done":
        set_json(gone, {"error": {"code": 5, "message": "the job's result expired", "status": "NOT_FOUND"}})
        return [job.create, *job.waiting, gone]
    try:
        gone = with_state(job, gone, "expired", {"code": "Gone", "message": "the job's result expired"})
    except SkipCase:
        set_text(gone, "")  # a 410 with no body still says expired
    return [job.create, *job.waiting, gone]


def cached(job: JobFlows) -> list[http.HTTPFlow]:
    polls = [clone(f) for f in job.status_polls]
    for flow in polls:
        flow.response.headers["Cache-Control"] = "max-age=30"
        for name in ("Pragma", "Expires"):
            flow.response.headers.pop(name, None)
    return [job.create, *polls, *job.after]


def etag_stuck(job: JobFlows) -> list[http.HTTPFlow]:
    polls = [clone(f) for f in job.status_polls]
    etag = next((f.response.headers["ETag"] for f in polls if "ETag" in f.response.headers), f'"{job.job_id}"')
    for flow in polls:
        flow.response.headers["ETag"] = etag
    return [job.create, *polls, *job.after]


def reordered(job: JobFlows) -> list[http.HTTPFlow]:
    """The first change of waiting state is answered out of order: the poll before it is sent,
    the next one overtakes it (on another connection) and the older answer arrives last. The file
    is in arrival order, like a live recording."""
    polls = [clone(f) for f in job.waiting]
    states = [json_body(f) for f in polls]
    at = next((i for i in range(len(polls) - 1) if states[i] != states[i + 1]), None)
    if at is None:
        raise SkipCase(f"job {job.job_id} shows one waiting state only; nothing to reorder")
    older, newer = polls[at], polls[at + 1]
    start = older.request.timestamp_start
    move(newer, start + 0.01 - newer.request.timestamp_start)
    late = newer.response.timestamp_end + 0.05 - older.response.timestamp_end
    older.response.timestamp_start += late  # still sent first, answered last
    older.response.timestamp_end += late
    host, port = newer.client_conn.peername or ("127.0.0.1", 50000)
    newer.client_conn = newer.client_conn.copy()
    newer.client_conn.peername = (host, port + 1)
    arrival = [*polls[:at], newer, older, *polls[at + 2:]]
    return [job.create, *arrival, clone(job.terminal), *job.after]


BUILDERS: dict[str, Callable[..., list[http.HTTPFlow]]] = {
    "slow": slow, "failed": failed, "expired": expired, "cached": cached, "etag-stuck": etag_stuck,
    "reordered": reordered,
}


# --- files --------------------------------------------------------------------------------------

def redact(flow: http.HTTPFlow) -> http.HTTPFlow:
    """A copy whose credentials are a placeholder: server replay does not match on them, and a
    variant written under tests/ gets committed."""
    copy = flow.copy()
    for headers, names in ((copy.request.headers, CREDENTIALS),
                           (copy.response.headers if copy.response is not None else None, ("Set-Cookie",))):
        for name in names if headers is not None else ():
            if name in headers:
                headers[name] = REDACTED
    return copy


def write_flows(path: Path, flows: Iterable[http.HTTPFlow]) -> None:
    with atomic_output(path, what="the flows") as temporary, temporary.open("wb") as f:
        writer = io.FlowWriter(f)
        for flow in flows:
            writer.add(flow)


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def derive(reference: str, out: Path, names: Sequence[str] = tuple(CASES), *,
           slow_polls: int | None = None, keep_credentials: bool = False) -> tuple[list[VariantFile], list[str]]:
    """Write `NAME.flows` and `NAME.json` into `out` for each case (credentials redacted unless
    `keep_credentials`); (written, skipped notes)."""
    source, job_id = parse_reference(reference)
    job = find_job(read_flows(source), job_id, source)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file, a FIFO or a device of that name
        raise ConfigError(f"{out}: cannot make the variants folder there ({exc.strerror or exc})") from exc
    written, skipped = [], []
    for name in names:
        spec = CASES[name]
        try:
            flows = BUILDERS[name](job, slow_polls or max(3 * len(job.waiting), 20)) if name == "slow" \
                else BUILDERS[name](job)
        except SkipCase as why:
            skipped.append(f"{name}: {why}")
            continue
        except Exception as exc:  # noqa: BLE001 - one odd case must not cost the user the others
            skipped.append(f"{name}: could not be derived ({type(exc).__name__}: {exc})")
            continue
        sidecar = VariantFile(case=spec, source=str(source), job_id=safe_value(job.job_id),  # committed: no secrets
                              base_url=origin(request_url(job.create.request)),
                              create_method=job.create.request.method,
                              create_url=redact_url(request_url(job.create.request)),
                              status_url=redact_url(request_url(job.terminal.request)),
                              status_polls=sum(1 for f in flows if request_url(f.request) == request_url(
                                  job.terminal.request) and f.request.method in ("GET", "HEAD")))
        first = clone(flows[0])
        first.comment = safe_text(f"pollwatch variant {name} of {source.name}:{job.job_id}: a correct client must "
                                  f"{spec.must}")
        first.metadata["pollwatch_variant"] = sidecar.model_dump(mode="json")
        write_flows(out / f"{name}.flows", [first, *flows[1:]] if keep_credentials else map(redact, [first, *flows[1:]]))
        with atomic_output(out / f"{name}.json", what="the variant's description") as temporary:
            temporary.write_text(sidecar.model_dump_json(indent=2) + "\n", encoding="utf-8")
        written.append(sidecar)
    return written, skipped


def serving_file(directory: str | Path, name: str, target: Path, spare: int = SPARE_ANSWERS) -> VariantFile:
    """Variant `name` as server replay should serve it, written to `target`: in request order (a
    sequential client meets answers in the order it asks) and followed by `spare` copies of the
    last status answer, so a client that polls on after the end is seen doing so, not cut off."""
    variant, path = load_variant(directory, name)
    flows = sorted(read_flows(path), key=lambda f: f.request.timestamp_start)
    status = [f for f in flows if redact_url(request_url(f.request)) == variant.status_url and f.request.method == "GET"]
    write_flows(target, [*flows, *(clone(status[-1]) for _ in range(spare if status else 0))])
    return variant
