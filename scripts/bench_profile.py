"""Profile: where `pollwatch analyze` and the proxy's response hook spend their time.

Two in-process runs under pyinstrument (a sampling profiler: `pip install pyinstrument`), each
printing the functions that take the most time, by self time (the function's own code) and by
total time (with what it calls):

- analyze: `analyze_recordings` over scripts/bench_analyze.py's generated flow file of N jobs x 10
  polls (cached under /tmp/pollwatch-bench), into a new database;
- hook: PollWatch.response over the same kind of flows (every request job traffic, the all-polls
  load), read into memory first, then fed to the addon in mitmproxy's test context with a
  database, as mitmdump would; the time per flow is printed too.

The writer thread is not sampled (it runs beside the tracker; its CPU shows in the hook's process
figure and in bench_analyze's), nor is the second process that reads a large flow file
(sources/flowpipe.py).

    .venv/bin/python scripts/bench_profile.py [--analyze-jobs 10000] [--hook-jobs 2000] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from mitmproxy import http, io
from mitmproxy.test import taddons
from pyinstrument import Profiler
from pyinstrument.frame import Frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyze import CACHE, generate  # noqa: E402

from pollwatch.mitm.addon import PollWatch  # noqa: E402
from pollwatch.sources.analysis import analyze_recordings  # noqa: E402


def top_functions(root: Frame | None, top: int) -> str:
    """The `top` functions by self time and by total time (recursion counted once), as text."""
    own: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)

    def walk(frame: Frame, above: frozenset[str]) -> None:
        if frame.is_synthetic:  # pyinstrument's [self] markers: already in the parent's self time
            return
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[name] += frame.total_self_time
        if name not in above:
            total[name] += frame.time
        for child in frame.children:
            walk(child, above | {name})

    if root is None:
        return "(no samples)"
    walk(root, frozenset())
    whole = root.time or 1.0
    lines = []
    for title, table in (("self time", own), ("total time", total)):
        lines.append(f"  by {title}:")
        for name, seconds in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {seconds / whole:6.1%} {seconds:7.2f} s  {name}")
    return "\n".join(lines)


def profile_analyze(jobs: int, top: int) -> None:
    files = generate(CACHE / f"jobs{jobs}x10.f1", jobs, 10, 1)
    with tempfile.TemporaryDirectory() as tmp:
        profiler = Profiler(interval=0.001)
        began = time.thread_time()
        with profiler:
            summary = analyze_recordings(files, Path(tmp) / "profile.sqlite")
        used = time.thread_time() - began
    print(f"analyze: {summary.exchanges} flows, {summary.jobs} jobs remembered, {used:.1f} s CPU in the analysing "
          f"thread under the profiler ({used / summary.exchanges * 1e6:.0f} us per flow; a large flow file is read "
          "by a second process, not sampled)")
    print(top_functions(profiler.last_session.root_frame() if profiler.last_session else None, top), flush=True)


def profile_hook(jobs: int, top: int) -> None:
    files = generate(CACHE / f"jobs{jobs}x10.f1", jobs, 10, 1)
    with files[0].open("rb") as f:
        flows = [flow for flow in io.FlowReader(f).stream() if isinstance(flow, http.HTTPFlow)]
    asyncio.run(_feed(flows, top))


async def _feed(flows: list[http.HTTPFlow], top: int) -> None:
    """Inside a running loop, as in mitmdump; once without the profiler (the time per flow), once with."""
    hook, process = _hook_pass(flows, None)
    profiler = Profiler(interval=0.0005)
    _hook_pass(flows, profiler)
    print(f"hook: {len(flows)} flows through PollWatch.response, without the profiler: {hook / len(flows) * 1e6:.0f} us "
          f"CPU per flow in the hook, {process / len(flows) * 1e6:.0f} us with the writer thread's (process CPU)")
    print(top_functions(profiler.last_session.root_frame() if profiler.last_session else None, top), flush=True)


def _hook_pass(flows: list[http.HTTPFlow], profiler: Profiler | None) -> tuple[float, float]:
    """CPU seconds over every flow, a fresh addon with its own database: (this thread's, in the
    hook; the process's, until the writer has stored everything). CPU, not wall time: the
    machine may be busy with other work."""
    with tempfile.TemporaryDirectory() as tmp:
        addon = PollWatch()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, pollwatch_db=str(Path(tmp) / "hook.sqlite"))
            if profiler is not None:
                profiler.start()
            thread, process = time.thread_time(), time.process_time()
            for flow in flows:
                addon.response(flow)
            thread = time.thread_time() - thread
            if profiler is not None:
                profiler.stop()
            addon.done()  # waits for the writer
            process = time.process_time() - process
    if addon.internal_errors:
        raise SystemExit(f"{addon.internal_errors} internal error(s) in the hook")
    return thread, process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyze-jobs", type=int, default=10_000, help="jobs (x 10 polls) for the analyze profile; 0 skips it")
    parser.add_argument("--hook-jobs", type=int, default=2000, help="jobs (x 10 polls) fed to the hook; 0 skips it")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    if args.hook_jobs:
        profile_hook(args.hook_jobs, args.top)
    if args.analyze_jobs:
        profile_analyze(args.analyze_jobs, args.top)


if __name__ == "__main__":
    main()
