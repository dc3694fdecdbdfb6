"""Benchmark: proxy CPU time per request with pollwatch, against mitmdump running a no-op script.

All proxies serve the same traffic in the same run (sample API on loopback, httpx through the
proxy), one load at a time, the contenders alternating within each round:

- mix: one third job traffic (creations + polls), the rest unrelated requests;
- all-polls: every request is job traffic: a job created (202), then polled until it ends;
- realistic: one request in ten is job traffic, the rest ordinary API calls and pages.

CPU time is read from /proc/PID/stat (utime + stime), which is steadier than throughput on a
shared 2-core machine; throughput and the p99 latency the client saw are printed too, and the
proxy's CPU split into its main thread (the event loop, where hooks run) and the other threads
(pollwatch's database writer).

With `--hooks`, one more pollwatch proxy per load runs pollwatch's script with every sync hook
timed (thread CPU time inside mitmdump, where the hooks meet the proxy's own work between flows;
an in-process loop over flows, as scripts/bench_profile.py runs, keeps its caches warm and
reads lower). With `--batched`, one more pollwatch proxy per round handles live flows in batches
after their hooks (`pollwatch_batch=64`, mitm/batch.py), interleaved with the others, for the
difference batching makes; the batch's work is timed as `PollWatch.batch`.

    .venv/bin/python scripts/bench_overhead.py [--requests 3000] [--rounds 3] [--load all-polls realistic mix] [--hooks]
        [--batched]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from pollwatch.demo import SampleAPI, Timing
from pollwatch.demo.proxy import ProxyProcess

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return _ticks(Path(f"/proc/{pid}/stat")) / TICKS


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """(main thread, every other thread) CPU seconds of a process so far (threads that ended
    are not counted: read before the proxy stops)."""
    main = other = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ticks = _ticks(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
        if task.name == str(pid):
            main += ticks
        else:
            other += ticks
    return main / TICKS, other / TICKS


def _ticks(stat: Path) -> int:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


class Client:
    """httpx through the proxy, timing every request."""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.latencies = client, []

    def send(self, method: str, url: str) -> httpx.Response:
        began = time.perf_counter()
        response = self.client.request(method, url)
        self.latencies.append(time.perf_counter() - began)
        return response


def mix(client: Client, api: SampleAPI, requests: int) -> None:
    """One third job traffic (creations + polls), the rest unrelated requests."""
    status_url = None
    for i in range(requests):
        if i % 30 == 0:
            status_url = api.url + client.send("POST", f"{api.url}/api/exports?fault=cached-status").headers["Location"]
        elif i % 3 == 0 and status_url:
            client.send("GET", status_url)
        else:
            client.send("GET", f"{api.url}/api/exports/none-{i % 7}/download")


def _job_step(client: Client, api: SampleAPI, status_url: str | None) -> str | None:
    """One request of job traffic: a poll of the running job, or a new job once it has ended."""
    if status_url is None:
        return api.url + client.send("POST", f"{api.url}/api/exports").headers["Location"]
    text = client.send("GET", status_url).text
    return None if '"succeeded"' in text or '"failed"' in text else status_url


def all_polls(client: Client, api: SampleAPI, requests: int) -> None:
    """Every request is job traffic: a job created, then polled to the end, then the next."""
    status_url = None
    for _ in range(requests):
        status_url = _job_step(client, api, status_url)


def realistic(client: Client, api: SampleAPI, requests: int) -> None:
    """One request in ten is job traffic; the others ordinary API calls (404s) and a page."""
    status_url = None
    for i in range(requests):
        if i % 10 == 0:
            status_url = _job_step(client, api, status_url)
        elif i % 3 == 0:
            client.send("GET", f"{api.url}/")
        else:
            client.send("GET", f"{api.url}/api/users/{i % 50}/settings")


LOADS: dict[str, Callable[[Client, SampleAPI, int], None]] = {"mix": mix, "all-polls": all_polls,
                                                              "realistic": realistic}


def measure(api: SampleAPI, load: str, requests: int, db: Path | None,
            extra_args: list[str]) -> tuple[float, float, float, float, float]:
    """(CPU ms per request, requests/s, p99 latency ms, main-thread and other-threads CPU ms per
    request) of one fresh proxy (pollwatch when `db` is set)."""
    with ProxyProcess(db, extra_args=extra_args) as proxy:
        pid = proxy.pid
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
            LOADS[load](Client(http), api, 50)  # warm up
            client = Client(http)
            before, threads, began = cpu_seconds(pid), thread_cpu_seconds(pid), time.perf_counter()
            LOADS[load](client, api, requests)
            wall, used = time.perf_counter() - began, cpu_seconds(pid) - before
            main, other = (after - b for after, b in zip(thread_cpu_seconds(pid), threads))
            if db is not None:
                time.sleep(1.0)  # the writer's last flush (every 0.5 s) of these requests
                other = thread_cpu_seconds(pid)[1] - threads[1]
    p99 = statistics.quantiles(client.latencies, n=100)[98] * 1000
    return used / requests * 1000, requests / wall, p99, main / requests * 1000, other / requests * 1000


TIMED_SCRIPT = """
import inspect, time
from pollwatch.mitm.script import addons as watched

spent = {}

def timed(hook, label):
    def run(*args):
        began = time.thread_time()
        try:
            return hook(*args)
        finally:
            total = spent.setdefault(label, [0.0, 0])
            total[0] += time.thread_time() - began
            total[1] += 1
    return run

for addon in watched:
    for name in ("request", "response", "error"):
        hook = getattr(addon, name, None)
        if hook is not None and not inspect.iscoroutinefunction(hook):
            setattr(addon, name, timed(hook, f"{type(addon).__name__}.{name}"))
    batch = getattr(addon, "batch", None)
    if batch is not None:  # live flows handled together, after their hooks (mitm/batch.py)
        for name in ("flush", "drain"):
            setattr(batch, name, timed(getattr(batch, name), f"{type(addon).__name__}.batch"))

class Report:
    def done(self):
        print("HOOKS " + " ".join(f"{k}={v[0]:.6f}/{v[1]}" for k, v in spent.items()), flush=True)

addons = [*watched, Report()]
"""
"""pollwatch's mitmdump script with its sync hooks timed (thread CPU), summed up at shutdown."""


def hook_times(api: SampleAPI, load: str, requests: int, script: Path, db: Path,
               extra: list[str] | None = None) -> dict[str, float]:
    """Thread CPU microseconds per request spent in each of pollwatch's sync hooks inside mitmdump
    (the warm-up requests included: the hooks are timed from start-up)."""
    with ProxyProcess(None, extra_args=["-s", str(script), "--set", f"pollwatch_db={db}", *(extra or [])]) as proxy:
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
            LOADS[load](Client(http), api, 50)
            LOADS[load](Client(http), api, requests)
    line = next((line for line in reversed(proxy.lines) if line.startswith("HOOKS ")), "")
    times = {}
    for item in line.split()[1:]:
        name, _, value = item.partition("=")
        times[name] = float(value.split("/")[0]) / (requests + 50) * 1e6
    return times


BASELINES = {
    "empty script": "addons = []\n",
    "no-op addon": "class Noop:\n    def response(self, flow):\n        pass\n\n    def error(self, flow):\n        pass\n\n\naddons = [Noop()]\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", nargs="+", choices=list(LOADS), default=list(LOADS))
    parser.add_argument("--hooks", action="store_true", help="also time each of pollwatch's hooks inside mitmdump")
    parser.add_argument("--batched", action="store_true",
                        help="also run pollwatch handling live flows in batches (pollwatch_batch=64), interleaved")
    args = parser.parse_args()
    watchers = {"pollwatch": []}
    if args.batched:
        watchers["batched"] = ["--set", "pollwatch_batch=64"]
    with tempfile.TemporaryDirectory() as tmp, SampleAPI(timing=Timing(0.02, 0.1)) as api:
        scripts = {}
        for name, code in BASELINES.items():
            scripts[name] = Path(tmp) / f"{name.replace(' ', '_')}.py"
            scripts[name].write_text(code)
        for load in args.load:
            results: dict[str, list[tuple[float, ...]]] = {name: [] for name in (*BASELINES, *watchers)}
            for round_ in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
                for name, script in scripts.items():
                    results[name].append(measure(api, load, args.requests, None, ["-s", str(script)]))
                for name, extra in watchers.items():
                    db = Path(tmp) / f"bench-{load}-{round_}-{len(extra)}.sqlite"
                    results[name].append(measure(api, load, args.requests, db, extra))
                print(f"{load} round {round_ + 1}: " + ", ".join(f"{n} {v[-1][0]:.3f}" for n, v in results.items())
                      + " ms CPU/request", flush=True)
            report(load, args.rounds, args.requests, results, watchers)
            if args.hooks:
                script = Path(tmp) / "timed_pollwatch.py"
                script.write_text(TIMED_SCRIPT)
                for name, extra in watchers.items():
                    times = hook_times(api, load, args.requests, script, Path(tmp) / f"hooks-{load}-{len(extra)}.sqlite",
                                       extra)
                    print(f"  {name}'s hooks inside mitmdump: {sum(times.values()):.0f} us thread CPU per request ("
                          + ", ".join(f"{k} {v:.0f}" for k, v in times.items()) + ")", flush=True)


def report(load: str, rounds: int, requests: int, results: dict[str, list[tuple[float, ...]]],
           watchers: dict[str, list[str]]) -> None:
    """Medians per contender, each pollwatch run against each baseline, and the CPU ratio round by
    round (each run against the baseline run beside it: drift between rounds cancels out)."""
    medians = {name: [statistics.median(x) for x in zip(*values)] for name, values in results.items()}
    print(f"{load}: median over {rounds} rounds of {requests} requests (proxy CPU ms per request, "
          f"requests/s, client p99 ms):")
    for watcher in watchers:
        cpu, rate, p99, _, _ = medians[watcher]
        for name in BASELINES:
            b_cpu, b_rate, b_p99, _, _ = medians[name]
            paired = [ours[0] / theirs[0] for ours, theirs in zip(results[watcher], results[name])]
            tails = [ours[2] / theirs[2] for ours, theirs in zip(results[watcher], results[name])]
            print(f"  {watcher} against {name}: {cpu:.3f} ms {rate:.0f}/s p99 {p99:.1f} / {b_cpu:.3f} ms "
                  f"{b_rate:.0f}/s p99 {b_p99:.1f}   CPU ratio {cpu / b_cpu:.3f}x  throughput {rate / b_rate:.3f}x  "
                  f"p99 {p99 / b_p99:.3f}x", flush=True)
            print("    CPU ratio round by round: " + " ".join(f"{r:.3f}" for r in paired)
                  + f", median {statistics.median(paired):.3f}x; p99 ratio round by round: "
                  + " ".join(f"{r:.2f}" for r in tails) + f", median {statistics.median(tails):.2f}x", flush=True)
    print("  CPU ms per request by thread (main: the event loop, where hooks run; other: pollwatch's writer): "
          + ", ".join(f"{name} {v[3]:.3f} + {v[4]:.3f}" for name, v in medians.items()), flush=True)

if __name__ == "__main__":
    main()
