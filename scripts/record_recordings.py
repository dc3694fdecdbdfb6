"""Record every demo scenario into recordings/<name>.flows through a real mitmdump (-w), then
analyse each recording offline and write recordings/<name>.expected.json.

Run with `scripts/record` (or `.venv/bin/python scripts/record_recordings.py [NAME...]`).
Fixed loopback ports keep URLs stable between regenerations; the expected file holds the
scenario's required codes (the specification) and the exact codes and state sequences the
analysis found (the golden result the tests compare against).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import read_through_mitmdump  # noqa: E402  (the tests read recordings the same way)

from pollwatch.demo import SCENARIOS, SampleAPI, SharedCache, run_scenario
from pollwatch.demo.proxy import ProxyProcess
from pollwatch.core.findings import CATALOGUE, Severity

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "recordings"
PORTS = {"api": 18180, "staging": 18181, "cache": 18182}
IDLE_AFTER = 2.5  # seconds of quiet after the client stops, as a real capture would have


def record(name: str, workdir: Path) -> dict:
    flows = OUT / f"{name}.flows"
    with SampleAPI(port=PORTS["api"]) as api, SampleAPI(name="staging", port=PORTS["staging"]) as staging, \
            SharedCache(api.url, port=PORTS["cache"]) as cache, \
            ProxyProcess(workdir / f"{name}.live.sqlite", record=flows) as proxy, \
            httpx.Client(proxy=proxy.url, trust_env=False, timeout=15) as client, \
            httpx.Client(proxy=proxy.url, trust_env=False, timeout=15) as other_client:
        run_scenario(SCENARIOS[name], api=api, staging=staging, cache=cache, client=client,
                     other_client=other_client)
        time.sleep(IDLE_AFTER)
    return expectations(name, workdir)


def expectations(name: str, workdir: Path) -> dict:
    """Analyse the recording offline; its findings must include what the scenario promises."""
    scenario = SCENARIOS[name]
    flows = OUT / f"{name}.flows"
    db = workdir / f"{name}.offline.sqlite"
    read_through_mitmdump(flows, db)
    codes, jobs = summarise(db)
    missing = set(scenario.expected_codes) - codes
    if missing:
        raise SystemExit(f"{name}: the recording does not show {sorted(missing)}; found {sorted(codes)}")
    return {"scenario": name, "description": scenario.description,
            "must_include": sorted(scenario.expected_codes), "codes": sorted(codes), "jobs": jobs}


def summarise(db: Path) -> tuple[set[str], list[dict]]:
    with sqlite3.connect(db) as conn:
        codes = {row[0] for row in conn.execute("select code from findings")}
        jobs = [{"job_id": job_id, "states": json.loads(states)}
                for job_id, states in conn.execute("select job_id, states from jobs order by created_at, key")]
    return codes, jobs


def main(args: list[str]) -> None:
    """`--expected-only`: keep the recorded traffic, re-derive the expected files (after a rule
    change that is meant to change what the recordings yield)."""
    expected_only = "--expected-only" in args
    names = [a for a in args if not a.startswith("--")]
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # scenarios needing proxy options (verification, the fix) are live only
        for name in names or [n for n, s in SCENARIOS.items() if not s.proxy_options]:
            expected = expectations(name, Path(tmp)) if expected_only else record(name, Path(tmp))
            (OUT / f"{name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
            loud = [c for c in expected["codes"] if CATALOGUE[c].severity is not Severity.INFO]
            print(f"{name:<18} {len(expected['jobs'])} job(s)  {', '.join(expected['codes']) or '-'}")
            if not expected["must_include"] and loud:
                raise SystemExit(f"{name}: a healthy recording produced warnings: {loud}")


if __name__ == "__main__":
    main(sys.argv[1:])
