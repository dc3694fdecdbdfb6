"""Benchmark: proxy CPU time per request with pollwatch, against mitmdump running a no-op script.

All proxies serve the same traffic in the same run (sample API on loopback, httpx through the
proxy), one load at a time, the contenders alternating within each round:

- mix: one third job traffic (creations + polls), the rest unrelated requests;
- all-polls: every request is job traffic: a job created (202), then polled until it ends;
- realistic: one request in ten is job traffic, the rest ordinary API calls and pages.

CPU time is read from /proc/PID/stat (utime + stime), which is steadier than throughput on a
shared 2-core machine; throughput and the p99 latency the client saw are printed too.

    .venv/bin/python scripts/bench_overhead.py [--requests 3000] [--rounds 3] [--load all-polls realistic mix]
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
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


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


def measure(api: SampleAPI, load: str, requests: int, db: Path | None, extra_args: list[str]) -> tuple[float, float, float]:
    """(CPU ms per request, requests/s, p99 latency ms) of one fresh proxy (pollwatch when `db` is set)."""
    with ProxyProcess(db, extra_args=extra_args) as proxy:
        pid = proxy.pid
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as http:
            LOADS[load](Client(http), api, 50)  # warm up
            client = Client(http)
            before, began = cpu_seconds(pid), time.perf_counter()
            LOADS[load](client, api, requests)
            wall, used = time.perf_counter() - began, cpu_seconds(pid) - before
    p99 = statistics.quantiles(client.latencies, n=100)[98] * 1000
    return used / requests * 1000, requests / wall, p99


BASELINES = {
    "empty script": "addons = []\n",
    "no-op addon": "class Noop:\n    def response(self, flow):\n        pass\n\n    def error(self, flow):\n        pass\n\n\naddons = [Noop()]\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", nargs="+", choices=list(LOADS), default=list(LOADS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SampleAPI(timing=Timing(0.02, 0.1)) as api:
        scripts = {}
        for name, code in BASELINES.items():
            scripts[name] = Path(tmp) / f"{name.replace(' ', '_')}.py"
            scripts[name].write_text(code)
        for load in args.load:
            results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in (*BASELINES, "pollwatch")}
            for round_ in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
                for name, script in scripts.items():
                    results[name].append(measure(api, load, args.requests, None, ["-s", str(script)]))
                db = Path(tmp) / f"bench-{load}-{round_}.sqlite"
                results["pollwatch"].append(measure(api, load, args.requests, db, []))
                print(f"{load} round {round_ + 1}: " + ", ".join(f"{n} {v[-1][0]:.3f}" for n, v in results.items())
                      + " ms CPU/request", flush=True)
            medians = {name: [statistics.median(x) for x in zip(*values)] for name, values in results.items()}
            cpu, rate, p99 = medians["pollwatch"]
            print(f"{load}: median over {args.rounds} rounds of {args.requests} requests (proxy CPU ms per request, "
                  f"requests/s, client p99 ms):")
            for name in BASELINES:
                b_cpu, b_rate, b_p99 = medians[name]
                print(f"  {name:<13} {b_cpu:.3f} ms {b_rate:.0f}/s p99 {b_p99:.1f}   pollwatch {cpu:.3f} ms {rate:.0f}/s "
                      f"p99 {p99:.1f}   CPU ratio {cpu / b_cpu:.3f}x  throughput {rate / b_rate:.3f}x  "
                      f"p99 {p99 / b_p99:.3f}x", flush=True)


if __name__ == "__main__":
    main()
