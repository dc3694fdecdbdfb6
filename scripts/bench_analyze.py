"""Benchmark: `pollwatch analyze` peak memory and time against a bare mitmproxy FlowReader pass.

Generates flow files of N jobs (a 202 creation, then polls: running ... succeeded) on a loopback
URL, JOBS_IN_FLIGHT jobs interleaved in time, cached under /tmp/pollwatch-bench. Then, per size,
alternately runs in a subprocess (measured with os.wait4: that child's own peak RSS and CPU):

- bare: FlowReader over the file(s), touching every response body;
- analyze: `pollwatch analyze FILES --db NEW.sqlite`.

Ratios are taken within one run, so a busy machine slows both sides alike. `pollwatch analyze`
reads a large flow file in a second process (sources/flowpipe.py): the CPU time counts both
processes, "MB RSS" is the larger one's peak (what wait4 reports) and "MB all" the peak of both
together (sampled from /proc every 0.1 s). `--keep-db` leaves the last database of the largest
size where scripts/bench_queries.py looks for it.

    .venv/bin/python scripts/bench_analyze.py [--jobs 1000 10000 100000] [--polls 10] [--files 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mitmproxy.io import tnetstring
from mitmproxy.test import tflow

CACHE = Path(tempfile.gettempdir()) / "pollwatch-bench"
JOBS_IN_FLIGHT = 50
BARE = """
import sys
from mitmproxy import io, http
n = 0
for name in sys.argv[1:]:
    with open(name, "rb") as f:
        for flow in io.FlowReader(f).stream():
            if isinstance(flow, http.HTTPFlow) and flow.response is not None:
                n += len(flow.response.content or b"")
print(n)
"""


def _template() -> dict:
    """A flow's state as FlowWriter writes it (FlowWriter.add is get_state + tnetstring.dump)."""
    state = tflow.tflow(resp=True).get_state()
    state["client_conn"]["peername"] = ("127.0.0.1", 50000)
    state["server_conn"]["address"] = ("127.0.0.1", 8000)
    state["request"].update(host="127.0.0.1", port=8000, scheme=b"http", authority=b"", content=b"")
    return state


def _flow(template: dict, serial: int, method: bytes, path: str, status: int, headers: list[tuple[bytes, bytes]],
          body: bytes, ts: float, cache: bytes = b"no-store") -> dict:
    state = copy.deepcopy(template)
    state["id"] = f"00000000-0000-4000-8000-{serial:012d}"
    state["client_conn"]["id"] = state["server_conn"]["id"] = state["id"]
    request, response = state["request"], state["response"]
    request.update(method=method, path=path.encode(), headers=((b"host", b"127.0.0.1:8000"),),
                   timestamp_start=ts, timestamp_end=ts + 0.001)
    response.update(status_code=status, reason=b"Accepted" if status == 202 else b"OK", content=body,
                    headers=tuple([(b"content-type", b"application/json"), (b"cache-control", cache),
                                   (b"content-length", str(len(body)).encode()), *headers]),
                    timestamp_start=ts + 0.002, timestamp_end=ts + 0.003)
    state["timestamp_created"] = ts
    return state


def generate(path: Path, jobs: int, polls: int, files: int, faulty: int = 0) -> list[Path]:
    """`files` flow files (each in time order; jobs dealt round-robin in blocks) of `jobs` jobs;
    with `faulty`, every faulty-th job's status is cacheable (max-age=30: a finding per job)."""
    names = [path.with_name(f"{path.stem}-{i}.flows") for i in range(files)]
    if all(n.exists() for n in names):
        return names
    template = _template()
    outs = [open(n.with_suffix(".tmp"), "wb") for n in names]
    start, serial = 1_700_000_000.0, 0
    for block in range(0, jobs, JOBS_IN_FLIGHT):  # JOBS_IN_FLIGHT jobs polled in turn, one second apart
        ids = [f"job-{n:08d}" for n in range(block, min(block + JOBS_IN_FLIGHT, jobs))]
        out = outs[(block // JOBS_IN_FLIGHT) % files]
        t = start + block * (polls + 1) / JOBS_IN_FLIGHT * 1.0
        for step in range(polls + 1):
            for k, job in enumerate(ids):
                serial += 1
                ts = t + step * 1.0 + k * 0.01
                url = f"/api/jobs/{job}"
                if step == 0:
                    flow = _flow(template, serial, b"POST", "/api/jobs", 202, [(b"location", url.encode())],
                                 b'{"id": "%s", "status": "queued"}' % job.encode(), ts)
                else:
                    state = b"succeeded" if step == polls else b"running"
                    cache = b"max-age=30" if faulty and int(job[4:]) % faulty == 0 else b"no-store"
                    flow = _flow(template, serial, b"GET", url, 200, [],
                                 b'{"id": "%s", "status": "%s", "progress": %d}' % (job.encode(), state, step), ts, cache)
                tnetstring.dump(flow, out)
    for out, name in zip(outs, names):
        out.close()
        name.with_suffix(".tmp").rename(name)
    return names


def run(command: list[str]) -> tuple[float, float, float, float]:
    """(wall s, CPU s, peak RSS MB, peak RSS MB of it and its children together) of one child
    process (CPU and the first peak from wait4, which counts the children it waited for)."""
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    together = 0.0
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        together = max(together, tree_rss(child.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, max(together, usage.ru_maxrss / 1024)


def tree_rss(pid: int) -> float:
    """MB resident in `pid` and its descendants now (0 for those gone meanwhile)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return kb / 1024 + sum(tree_rss(c) for c in children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--polls", type=int, default=10, help="polls per job (after the creation)")
    parser.add_argument("--files", type=int, default=1, help="split each recording over this many files")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true", help="keep the largest size's database for bench_queries.py")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    pollwatch = str(Path(sys.executable).with_name("pollwatch"))
    print(f"{'jobs':>8} {'polls':>9} {'MB':>6} | {'bare s':>7} {'MB RSS':>7} | {'analyze s':>9} {'CPU s':>7} "
          f"{'MB RSS':>7} {'MB all':>7} | {'time x':>6} {'CPU x':>6}")
    for jobs in args.jobs:
        files = generate(CACHE / f"jobs{jobs}x{args.polls}.f{args.files}", jobs, args.polls, args.files)
        size = sum(f.stat().st_size for f in files) / 1e6
        bare, analysed = [], []
        for round_ in range(args.rounds):  # interleaved: drift on a shared machine hits both alike
            bare.append(run([sys.executable, "-c", BARE, *map(str, files)]))
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "bench.sqlite"
                analysed.append(run([pollwatch, "analyze", *map(str, files), "--db", str(db)]))
                if args.keep_db and jobs == max(args.jobs) and round_ == args.rounds - 1 and args.files == 1:
                    db.replace(CACHE / f"jobs{jobs}x{args.polls}.sqlite")  # where bench_queries.py looks
        b_wall, b_cpu, b_rss, _ = (statistics.median(x) for x in zip(*bare))
        a_wall, a_cpu, _, _ = (statistics.median(x) for x in zip(*analysed))
        print(f"{jobs:>8} {jobs * args.polls:>9} {size:>6.0f} | {b_wall:>7.1f} {b_rss:>7.0f} | {a_wall:>9.1f} "
              f"{a_cpu:>7.1f} {max(r[2] for r in analysed):>7.0f} {max(r[3] for r in analysed):>7.0f} | "
              f"{a_wall / b_wall:>6.2f} {a_cpu / b_cpu:>6.2f}", flush=True)
    print(f"medians of {args.rounds} interleaved rounds; {args.files} file(s) per recording; "
          f"time x / CPU x: analyze against the bare FlowReader pass")


if __name__ == "__main__":
    main()
