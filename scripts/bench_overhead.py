"""Benchmark: proxy CPU time per request with pollwatch, against mitmdump running a no-op script.

Both proxies serve the same traffic in the same run (sample API on loopback, httpx through the
proxy): a mix of job creations, status polls and unrelated requests. CPU time is read from
/proc/PID/stat (utime + stime), which is steadier than throughput on a shared 2-core machine.

    .venv/bin/python scripts/bench_overhead.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import httpx

from pollwatch.demo import SampleAPI, Timing
from pollwatch.demo.proxy import ProxyProcess

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def traffic(client: httpx.Client, api: SampleAPI, requests: int) -> None:
    """One third job traffic (creations + polls), the rest unrelated requests."""
    status_url = None
    for i in range(requests):
        if i % 30 == 0:
            status_url = api.url + client.post(f"{api.url}/api/exports?fault=cached-status").headers["Location"]
        elif i % 3 == 0 and status_url:
            client.get(status_url)
        else:
            client.get(f"{api.url}/api/exports/none-{i % 7}/download")


def measure(api: SampleAPI, requests: int, db: Path | None, extra_args: list[str]) -> float:
    """CPU milliseconds per request of one fresh proxy (pollwatch when `db` is set)."""
    with ProxyProcess(db, extra_args=extra_args) as proxy:
        pid = proxy.pid
        with httpx.Client(proxy=proxy.url, trust_env=False, timeout=30) as client:
            traffic(client, api, 50)  # warm up
            before = cpu_seconds(pid)
            traffic(client, api, requests)
            used = cpu_seconds(pid) - before
    return used / requests * 1000


BASELINES = {
    "empty script": "addons = []\n",
    "no-op addon": "class Noop:\n    def response(self, flow):\n        pass\n\n    def error(self, flow):\n        pass\n\n\naddons = [Noop()]\n",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SampleAPI(timing=Timing(0.5, 2.0)) as api:
        scripts = {}
        for name, code in BASELINES.items():
            scripts[name] = Path(tmp) / f"{name.replace(' ', '_')}.py"
            scripts[name].write_text(code)
        results: dict[str, list[float]] = {name: [] for name in (*BASELINES, "pollwatch")}
        for round_ in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
            for name, script in scripts.items():
                results[name].append(measure(api, args.requests, None, ["-s", str(script)]))
            results["pollwatch"].append(measure(api, args.requests, Path(tmp) / f"bench{round_}.sqlite", []))
            print(f"round {round_ + 1}: " + ", ".join(f"{n} {v[-1]:.3f}" for n, v in results.items())
                  + " ms CPU/request")
        medians = {name: statistics.median(values) for name, values in results.items()}
        watched = medians["pollwatch"]
        print(f"median over {args.rounds} rounds of {args.requests} requests (ms of proxy CPU per request):")
        for name in BASELINES:
            print(f"  {name:<13} {medians[name]:.3f}   pollwatch {watched:.3f}   ratio {watched / medians[name]:.2f}x "
                  f"(+{watched - medians[name]:.3f} ms)")


if __name__ == "__main__":
    main()
