"""The picture of one job: an inline SVG timeline of its exchanges, states and findings, and the
legend drawn with the very same shapes.

Kept apart from the page because the geometry (scale, axis, label rows, thinning) is its own
problem; the page only asks for `job_timeline(job, ...)` and `legend()`. Hover text is SVG
`<title>`, so the picture needs no JavaScript; everything from the database is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pollwatch.report.data import (
    CACHEABLE,
    CACHED_BY,
    CHECK_FOUND,
    SEVERITIES_WORST_FIRST,
    STATES,
    JobView,
    severity_class,
    severity_rank,
    state_class,
)
from pollwatch.store.query import TERMINAL_STATES

esc = html.escape

WIDTH, HEIGHT = 1200, 138
PLOT_LEFT, PLOT_RIGHT = 24, 1040
BADGE_X = 1062
LABEL_ROWS = (14, 29)
MIN_SPAN = 1.0
"""Seconds: a job seen only once still gets a readable axis."""
FINDING_Y, POLL_Y, BAND_Y, AXIS_Y = 56, 78, 96, 110
WORKER_Y, WORKER_LANE = 122, 28
"""The worker's lane sits under the state bar; the axis moves down by `WORKER_LANE` to make room."""


@dataclass
class Scale:
    """Seconds since job creation to x."""

    t0: float
    span: float

    def x(self, ts: float | None) -> float:
        offset = min(max((ts or self.t0) - self.t0, 0.0), self.span)
        return PLOT_LEFT + offset / self.span * (PLOT_RIGHT - PLOT_LEFT)


def _scale(job: JobView) -> Scale:
    t0 = job.row["created_at"] or min((p["response_ts"] for p in job.polls), default=0.0)
    ends = ([p["response_ts"] for p in job.polls] + [t["ts"] for t in job.transitions] + [e["ts"] for e in job.worker]
            + [job.row["terminal_at"] or t0])
    return Scale(t0, max(max(ends, default=t0) - t0, MIN_SPAN) * 1.02)


def job_timeline(job: JobView, max_marks: int) -> str:
    """The SVG of one job; beyond `max_marks` exchanges, repeated unremarkable polls are thinned
    (a note says so)."""
    scale = _scale(job)
    axis_y = AXIS_Y + (WORKER_LANE if job.worker else 0)
    height = HEIGHT + axis_y - AXIS_Y
    marks = _thin(job.polls, max_marks, _notable_poll)
    xs = {p["flow_id"]: scale.x(p["response_ts"]) for p in job.polls}
    note = (f'<text x="{PLOT_LEFT}" y="{height - 2}" class="muted">{len(marks)} of {len(job.polls)} exchanges drawn '
            f"(repeated polls thinned)</text>" if len(marks) < len(job.polls) else "")
    body = "".join((_axis(scale, axis_y), _behind_worker(job, scale),
                    f'<line class="lane" x1="{PLOT_LEFT}" y1="{POLL_Y}" x2="{PLOT_RIGHT}" y2="{POLL_Y}"/>',
                    _bands(job, scale), _transitions(job, scale), "".join(_mark(p, scale, job.row["status_url"]) for p in marks),
                    _worker_lane(job, scale, max_marks), _finding_marks(job, xs), _checks(job, scale, axis_y),
                    _terminal(job), note))
    return (f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="timeline of job {esc(job.row["job_id"])}">{body}</svg>')


Notable = Callable[[dict[str, Any], "dict[str, Any] | None"], bool]


def _thin(items: list[dict[str, Any]], limit: int, notable: Notable, when: str = "response_ts") -> list[dict[str, Any]]:
    """About `limit` marks: every item `notable` (given the one before it) stays, the remaining
    room is spread evenly over the repeats; polls and worker events alike."""
    if len(items) <= limit:
        return items
    keep, plain, previous = [], [], None
    for item in items:
        (keep if notable(item, previous) else plain).append(item)
        previous = item
    room = max(limit - len(keep), 0)
    step = len(plain) / room if room else math.inf
    keep += [plain[int(i * step)] for i in range(room)] if room else []
    return sorted(keep, key=lambda item: item[when])


def _notable_poll(p: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """An exchange worth seeing: the creation, a cache's answer, a state change, a non-2xx."""
    return (p["kind"] == "create" or p["served_by"] in CACHED_BY or p["cache_verdict"] in CACHEABLE
            or p["state"] != (previous and previous["state"]) or not (200 <= (p["status"] or 0) < 300))


def _notable_event(e: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """A worker event worth seeing: a change of the worker's state, or its end."""
    return e["state"] in TERMINAL_STATES or e["state"] != (previous and previous["state"])


def _axis(scale: Scale, axis_y: float = AXIS_Y) -> str:
    step = _nice_step(scale.span / 10)
    ticks = []
    for i in range(int(scale.span / step) + 1):
        x = scale.x(scale.t0 + i * step)
        ticks.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}"/>'
                     f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{seconds(i * step)}</text>')
    return (f'<g class="axis"><line x1="{PLOT_LEFT}" y1="{axis_y}" x2="{PLOT_RIGHT}" y2="{axis_y}"/>{"".join(ticks)}'
            f'<text x="{WIDTH - 4}" y="{axis_y + 16}" text-anchor="end">seconds since creation</text></g>')


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _bands(job: JobView, scale: Scale) -> str:
    """A thin bar under the polls: the state the job was in, from one transition to the next."""
    if not job.transitions:
        return ""
    end = max([p["response_ts"] for p in job.polls] + [t["ts"] for t in job.transitions])
    out = []
    for t, nxt in zip(job.transitions, [*job.transitions[1:], None], strict=True):
        x1, x2 = scale.x(t["ts"]), scale.x(nxt["ts"] if nxt else end)
        out.append(_band_shape(x1, BAND_Y, max(x2 - x1, 2), state_class(t["to_state"]), esc(t["to_state"])))
    return "".join(out)


def _transitions(job: JobView, scale: Scale) -> str:
    """Vertical ticks where the state changed, labelled with the new state; labels that would
    overlap go to a second row, then only the tooltip tells."""
    free = [float("-inf")] * len(LABEL_ROWS)
    out = []
    for t in job.transitions:
        x = scale.x(t["ts"])
        row = next((i for i, edge in enumerate(free) if x > edge), None)
        label = ""
        if row is not None:
            free[row] = x + 7.2 * len(t["to_state"]) + 8
            label = f'<text x="{x + 3:.1f}" y="{LABEL_ROWS[row]}">{esc(t["to_state"])}</text>'
        top = LABEL_ROWS[-1 if row is None else row] + 4
        tip = f'{esc(t["from_state"] or "start")} → {esc(t["to_state"])} at +{seconds(t["ts"] - scale.t0)}'
        out.append(_tick_shape(x, top, BAND_Y + 6, state_class(t["to_state"]), label, tip))
    return "".join(out)


def _mark(p: dict[str, Any], scale: Scale, status_url: str | None) -> str:
    """One exchange: the creation or a poll, with what kind of answer it was."""
    x, state, tip = scale.x(p["response_ts"]), state_class(p["state"]), _poll_tip(p, scale, status_url)
    if p["kind"] == "create":
        return _create_shape(x, POLL_Y, state, tip)
    ring = "cached" if p["served_by"] in CACHED_BY else "cacheable" if p["cache_verdict"] in CACHEABLE else None
    return _poll_shape(x, POLL_Y, state, ring, tip)


def _poll_tip(p: dict[str, Any], scale: Scale, status_url: str | None) -> str:
    """Hover text; the URL only when the poll did not use the job's status URL."""
    state = p["state"] or "no state"
    raw = f" ({p['raw_state']})" if p["raw_state"] and p["raw_state"] != p["state"] else ""
    lifetime = f" {p['freshness_lifetime']:g} s" if p["freshness_lifetime"] else ""
    return esc(f"{p['kind']} {p['method']} {p['status'] or 'no response'} · {state}{raw} · "
               f"+{seconds(p['response_ts'] - scale.t0)} · served by {p['served_by']} · cache {p['cache_verdict']}"
               f"{lifetime}" + (f" · client {p['client']}" if p["client"] else "")
               + (f"\n{p['url']}" if p["url"] != status_url else ""))


def _finding_marks(job: JobView, xs: dict[str, float]) -> str:
    """A symbol per finding above the poll it belongs to (stacked, worst lowest), linked to its
    reference entry; findings of no drawn poll (e.g. polling-abandoned) go to the end."""
    stack: Counter[str] = Counter()
    out = []
    for f in sorted(job.findings, key=lambda f: severity_rank(f["severity"])):
        where = f["flow_id"] if f["flow_id"] in xs else "end"
        x, y = xs.get(where, PLOT_RIGHT + 10), FINDING_Y - 13 * stack[where]
        stack[where] += 1
        tip = f"{esc(f['severity'])} {esc(f['code'])}: {esc(f['message'] or '')}"
        out.append(f'<a href="#{code_anchor(f["code"])}">{_finding_shape(x, y, severity_class(f["severity"]), tip)}</a>')
    return "".join(out)


def _checks(job: JobView, scale: Scale, axis_y: float = AXIS_Y) -> str:
    """pollwatch's own origin checks (pollwatch_verify): small triangles on the axis, filled when
    the check raised a finding, dashed when the origin did not answer."""
    out = []
    for c in job.checks:
        result = c["result"] or ""
        kind = "found" if result in CHECK_FOUND else "failed" if result == "check failed" else "ok"
        origin = f"{c['status'] or 'no answer'} {c['origin_state'] or ''}".strip()
        tip = esc(f"pollwatch's origin check ({c['reason']}) at +{seconds(c['sent_at'] - scale.t0)}: "
                  f"client had {c['client_state'] or '-'}, origin says {origin} · {result}"
                  + (f" ({c['detail']})" if c["detail"] else ""))
        out.append(_check_shape(scale.x(c["sent_at"]), axis_y, kind, tip))
    return "".join(out)


def _terminal(job: JobView) -> str:
    state = job.row["terminal_state"]
    label = esc(state or f"no end ({job.row['last_state'] or 'no state'})")
    return _badge_shape(POLL_Y, state_class(state) if state else "non-terminal", label, f"final state: {label}")


# --- the worker's lane (`pollwatch worker-log`) -------------------------------------------------

def _worker_lane(job: JobView, scale: Scale, max_marks: int) -> str:
    """The worker's log events on the job's time axis, under the polls: a bar per event in its
    state's colour, the state word beside each change, the worker's end drawn tall with a guide
    line up through the polls, and a badge with the worker's last state."""
    if not job.worker:
        return ""
    end = job.worker_end
    out = [f'<line class="lane worker" x1="{PLOT_LEFT}" y1="{WORKER_Y}" x2="{PLOT_RIGHT}" y2="{WORKER_Y}"/>']
    if end is not None:
        x = scale.x(end["ts"])
        tip = esc(f"the worker logged {end['state']} at +{seconds(end['ts'] - scale.t0)}")
        out.append(f'<line class="worker-end" x1="{x:.1f}" y1="{FINDING_Y + 8}" x2="{x:.1f}" y2="{WORKER_Y}">'
                   f"{_tip(tip)}</line>")
    changes = {id(e) for e, before in zip(job.worker, [None, *job.worker[:-1]], strict=True) if _notable_event(e, before)}
    free = float("-inf")
    for e in _thin(job.worker, max_marks, _notable_event, when="ts"):
        x = scale.x(e["ts"])
        out.append(_worker_shape(x, WORKER_Y, state_class(e["state"]), e is end, _event_tip(e, scale)))
        if id(e) in changes and x > free:
            word = e["state_word"] or e["state"] or ""
            out.append(f'<text class="worker-word" x="{x + 7:.1f}" y="{WORKER_Y + 4}">{esc(word)}</text>')
            free = x + 7.2 * len(word) + 12
    last = job.worker[-1]["state"]
    label = esc(f"worker: {last}" if end is not None else f"worker: {last or 'no state'}")
    out.append(_badge_shape(WORKER_Y, state_class(last) if end is not None else "non-terminal", label,
                            f"the worker's last logged state: {esc(last or 'no state')}"))
    return "".join(out)


def _event_tip(e: dict[str, Any], scale: Scale) -> str:
    """Hover text of a worker event: everything the log line said that pollwatch kept."""
    word = f" ({e['state_word']})" if e["state_word"] and e["state_word"] != e["state"] else ""
    ids = ", ".join([*e["operation_ids"], *([f"trace {e['trace_id']}"] if e["trace_id"] else [])])
    return esc(f"worker {e['state'] or 'no state'}{word} · +{seconds(e['ts'] - scale.t0)} · {e['source']}"
               + (f" · {ids}" if ids else "") + (f"\n{e['message']}" if e["message"] else ""))


def _behind_worker(job: JobView, scale: Scale) -> str:
    """A red wash from the worker's end to the last non-terminal answer the client got after it:
    the gap a cache or a lagging status store opened (client-behind-worker)."""
    behind, end = job.behind_worker, job.worker_end
    if not behind or end is None:
        return ""
    x1, x2 = scale.x(end["ts"]), scale.x(behind[-1]["response_ts"])
    tip = esc(f"client behind the worker: {len(behind)} non-terminal answer(s) over "
              f"{seconds(behind[-1]['response_ts'] - end['ts'])} after the worker logged {end['state']}")
    return _gap_shape(x1, FINDING_Y + 8, max(x2 - x1, 2), WORKER_Y - FINDING_Y, tip)


# --- shapes, shared by the timelines and the legend (tips and labels arrive escaped) -----------

SYMBOLS = {"error": "M0,-6 L6,0 L0,6 L-6,0Z", "warning": "M0,-6 L6,5 L-6,5Z"}
"""Finding symbols: an error is a diamond, a warning a triangle, info a dot."""


def _tip(text: str) -> str:
    return f"<title>{text}</title>" if text else ""


def _poll_shape(x: float, y: float, state: str, ring: str | None, tip: str = "") -> str:
    """A disc in the state's colour; `cached` makes it hollow with a black ring, `cacheable`
    adds a dashed amber ring."""
    if ring is None:
        return f'<circle class="poll mark s-{state}" cx="{x:.1f}" cy="{y}" r="6">{_tip(tip)}</circle>'
    return (f'<g class="poll {ring} s-{state}"><circle class="ring" cx="{x:.1f}" cy="{y}" r="9.5"/>'
            f'<circle class="mark" cx="{x:.1f}" cy="{y}" r="5"/>{_tip(tip)}</g>')


def _create_shape(x: float, y: float, state: str, tip: str = "") -> str:
    return (f'<g class="create s-{state}"><rect class="mark" x="{x - 6:.1f}" y="{y - 6}" width="12" '
            f'height="12"/>{_tip(tip)}</g>')


def _finding_shape(x: float, y: float, severity: str, tip: str = "") -> str:
    path = SYMBOLS.get(severity)
    symbol = (f'<path d="{path}" transform="translate({x:.1f},{y})"/>' if path
              else f'<circle cx="{x:.1f}" cy="{y}" r="5.5"/>')
    return f'<g class="finding {severity}">{symbol}{_tip(tip)}</g>'


def _check_shape(x: float, y: float, kind: str, tip: str = "") -> str:
    return f'<path class="check {kind}" d="M{x - 4:.1f},{y - 1} L{x:.1f},{y - 8} L{x + 4:.1f},{y - 1}Z">{_tip(tip)}</path>'


def _tick_shape(x: float, top: float, bottom: float, state: str, label: str = "", tip: str = "") -> str:
    return (f'<g class="transition s-{state}"><line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>'
            f"{label}{_tip(tip)}</g>")


def _badge_shape(y: float, state: str, label: str, tip: str = "") -> str:
    """The rounded badge right of the plot: a lane's last state (the client's, the worker's)."""
    return (f'<g class="terminal s-{state}"><rect x="{BADGE_X}" y="{y - 12}" width="{WIDTH - BADGE_X - 4}" '
            f'height="24" rx="5"/><text x="{(BADGE_X + WIDTH - 4) / 2:.0f}" y="{y + 4}" text-anchor="middle">'
            f"{label}</text>{_tip(tip)}</g>")


def _worker_shape(x: float, y: float, state: str, end: bool = False, tip: str = "") -> str:
    """A worker log event: an upright bar in its state's colour; the worker's end taller, ringed."""
    w, h = (8, 20) if end else (6, 14)
    return (f'<rect class="worker mark s-{state}{" end" if end else ""}" x="{x - w / 2:.1f}" y="{y - h / 2}" '
            f'width="{w}" height="{h}" rx="2">{_tip(tip)}</rect>')


def _gap_shape(x: float, y: float, width: float, height: float, tip: str = "") -> str:
    return f'<rect class="behind" x="{x:.1f}" y="{y}" width="{width:.1f}" height="{height}">{_tip(tip)}</rect>'


def _band_shape(x: float, y: float, width: float, state: str, tip: str = "") -> str:
    return f'<rect class="band s-{state}" x="{x:.1f}" y="{y}" width="{width:.1f}" height="6">{_tip(tip)}</rect>'


# --- the legend ---------------------------------------------------------------------------------

Shape = Callable[[float, float], str]


def legend() -> str:
    """One explanatory picture drawn with the very shapes of the timelines."""
    states = [(partial(_poll_shape, state=state_class(s), ring=None), s or "no state") for s in (*STATES, None)]
    marks = [
        (partial(_create_shape, state="queued"), "creation (202)"),
        (partial(_poll_shape, state="running", ring=None), "poll answered by the server"),
        (partial(_poll_shape, state="queued", ring="cached"), "served by a cache (shared, 304, browser)"),
        (partial(_poll_shape, state="running", ring="cacheable"), "cacheable (fresh / heuristic)"),
        (lambda x, y: _check_shape(x, y + 5, "ok"), "pollwatch's origin check"),
    ]
    meaning = [
        (lambda x, y: _tick_shape(x, y - 9, y + 9, "succeeded"), "state change"),
        (lambda x, y: _band_shape(x - 9, y - 3, 18, "running"), "state over time"),
        *((partial(_finding_shape, severity=s), f"{s} finding") for s in SEVERITIES_WORST_FIRST),
        (lambda x, y: "", "hover a mark for details; click a finding for its fix"),
    ]
    worker = [
        (partial(_worker_shape, state="running"), "worker log event (pollwatch worker-log)"),
        (partial(_worker_shape, state="succeeded", end=True), "the worker's end (its terminal event)"),
        (lambda x, y: _gap_shape(x - 9, y - 9, 18, 18), "client behind the worker (non-terminal after the worker's end)"),
    ]
    rows = "".join(_legend_row(entries, y) for entries, y in ((states, 18), (marks, 48), (meaning, 78), (worker, 108)))
    return (f'<section class="legend" id="legend"><svg class="timeline" viewBox="0 0 {WIDTH} 124" role="img" '
            f'aria-label="legend">{rows}</svg></section>')


def _legend_row(entries: Sequence[tuple[Shape, str]], y: int) -> str:
    out, x = [], 12.0
    for shape, text in entries:
        out.append(f'{shape(x, y)}<text x="{x + 16:.0f}" y="{y + 4}">{esc(text)}</text>')
        x += 44 + 7.2 * len(text)
    return "".join(out)


# --- text shared with the page ------------------------------------------------------------------

def code_anchor(code: str) -> str:
    """The id of a code's entry in the page's findings reference; finding marks link there."""
    return "code-" + re.sub(r"[^a-z0-9-]", "_", code.lower())


def seconds(value: float) -> str:
    """Seconds to three significant digits, no trailing zeros (`0.3 s`, `12.5 s`, `240 s`)."""
    return f"{value:.0f} s" if value >= 100 else f"{float(f'{value:.3g}'):g} s"
