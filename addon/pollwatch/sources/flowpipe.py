"""A large flow file read in a second process while this one analyses it.

Reading a flow file (mitmproxy's FlowReader rebuilding every flow, and the adapter turning it
into an Observation) costs more than tracking it. For a large file, `pollwatch analyze` runs
`python -m pollwatch.sources.flowpipe FILE` beside itself: the child reads with
`mitmflows.iter_flows` exactly as the analysis would, and sends each observation's fields through
a pipe in pickled batches; this process rebuilds the same Observation
and tracks it while the child reads on. Two cores then share the work; the pipe's buffer bounds
what waits in between. A ReadError in the child is raised here, after the observations read
before it, with the same text; the child never outlives the iteration.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pollwatch.core.observation import Headers, Observation
from pollwatch.errors import ReadError

PARALLEL_FROM = 16 * 1024 * 1024
"""Flow files at least this large (bytes) are read in a second process; below it, the child's
start-up (importing mitmproxy, about half a second) costs more than it saves."""
BATCH = 256
"""Observations per pickled message."""
_FIELDS = Observation.FIELDS


def iter_flows_beside(path: Path) -> Iterator[tuple[Observation, int]]:
    """`mitmflows.iter_flows(path)`, read by a child process: the same observations and byte
    offsets, in the same order, and the same ReadError where the file is damaged. Where no
    child can be started, the file is read here."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child never blocks on it
        try:
            child = subprocess.Popen([sys.executable, "-m", "pollwatch.sources.flowpipe", str(path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        except OSError:
            from pollwatch.sources.mitmflows import iter_flows

            yield from iter_flows(path)
            return
        assert child.stdout is not None
        try:
            while True:
                try:
                    kind, payload = pickle.load(child.stdout)
                except (EOFError, pickle.UnpicklingError) as exc:
                    raise ReadError(f"{path}: the reader process stopped ({_stopped(child, errors) or exc})") from exc
                if kind == "end":
                    return
                if kind == "error":
                    raise ReadError(payload)
                for values, offset in payload:
                    yield _observation(values), offset
        finally:
            child.kill()
            child.communicate()


def _stopped(child: subprocess.Popen[bytes], errors: Any) -> str:
    """The last line the child wrote to stderr (its traceback's message)."""
    child.wait()
    errors.seek(0)
    lines = errors.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {child.returncode}"


def _values(obs: Observation) -> tuple[Any, ...]:
    """An observation's fields, headers as plain dicts (a dict subclass unpickles slowly)."""
    fields = obs.as_dict()
    return tuple(dict(v) if isinstance(v := fields[name], Headers) else v for name in _FIELDS)


def _observation(values: tuple[Any, ...]) -> Observation:
    fields = dict(zip(_FIELDS, values))
    fields["request_headers"] = Headers(fields["request_headers"])
    fields["response_headers"] = Headers(fields["response_headers"])
    return Observation(**fields)


def _serve(path: Path) -> None:
    """The child: every observation of `path` to stdout in batches, then "end" (or "error")."""
    from pollwatch.sources.mitmflows import iter_flows

    out, sys.stdout = sys.stdout.buffer, sys.stderr  # a stray print must not break the pickle stream
    batch: list[tuple[tuple[Any, ...], int]] = []
    try:
        for obs, offset in iter_flows(path):
            batch.append((_values(obs), offset))
            if len(batch) >= BATCH:
                pickle.dump(("obs", batch), out, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
    except ReadError as exc:
        pickle.dump(("obs", batch), out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(("error", str(exc)), out, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(("obs", batch), out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(("end", None), out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


if __name__ == "__main__":
    try:
        _serve(Path(sys.argv[1]))
    except BrokenPipeError:  # the analysis stopped early (an error of its own, Ctrl-C)
        sys.exit(1)
