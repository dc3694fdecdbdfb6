"""The mitmproxy addon: adapts flows, feeds the core, stores results, warns live.

Hooks stay thin: every decision is made by `Tracker`. Nothing here may alter, drop or delay a
flow; an internal error is counted and reported once, and the flow passes on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

from mitmproxy import command, ctx, exceptions, flowfilter, http
from mitmproxy import flow as mflow
from mitmproxy.hooks import UpdateHook
from pydantic import ValidationError

from pollwatch.mitm.batch import DEFAULT_SIZE, FlowBatch
from pollwatch.mitm.compat import create_task
from pollwatch.mitm.flows import observation_from_flow, raw_header
from pollwatch.mitm.marks import annotate
from pollwatch.core.config import Config
from pollwatch.errors import ConfigError, StorageError, first_line
from pollwatch.core.findings import Finding, Severity
from pollwatch.core.observation import Observation
from pollwatch.core.records import Update
from pollwatch.core.redact import safe_text
from pollwatch.contract_file import contract_config
from pollwatch.store.database import Session, Store
from pollwatch.core.tracking import Tracker
from pollwatch.core.verification import CHECK_HEADER, CheckPlan, OriginAnswer
from pollwatch.mitm.verify import Trust, Verifier
from pollwatch.mitm.worker_follow import WORKER_OPTIONS, WorkerWatch, add_worker_options, configure_worker
from pollwatch.core.worker import WorkerEvent
from pollwatch.store.worker import recompute_file

log = logging.getLogger("pollwatch")

LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}
CORE_OPTIONS = {
    "pollwatch_id_fields", "pollwatch_status_headers", "pollwatch_templates", "pollwatch_state_fields",
    "pollwatch_states", "pollwatch_id_headers", "pollwatch_abandon_after", "pollwatch_stuck_after",
    "pollwatch_stale_date", "pollwatch_keep_bodies", "pollwatch_contract",
}
TICK_SECONDS = 1.0
FIXES = ("no-store",)
"""Fixes `pollwatch_fix` can try on status responses (see mitm/fix.py)."""
PREFIX = "[pollwatch]"
"""Every log line pollwatch writes starts with this."""
VERIFY_OPTIONS = {"pollwatch_verify", "pollwatch_verify_interval", "pollwatch_verify_timeout", "ssl_insecure",
                  "ssl_verify_upstream_trusted_ca", "ssl_verify_upstream_trusted_confdir"}
STATUS_MATCHES = ("canonical", "same-path", "off-host", "first-poll")
"""How a request is tied to a job's status URL itself (not merely a URL naming the job's id)."""
FLOWS_REMEMBERED = 100_000
"""Flow id -> job key pairs kept for `pollwatch.job` (the oldest are forgotten first)."""
CHECK_HEADER_RAW = CHECK_HEADER.lower().encode()
UNWATCHED = "pollwatch_unwatched"
"""`flow.metadata` key of flows pollwatch answers itself (the live job view): never job traffic."""


class PollWatch:
    """Watches every flow (or those `pollwatch_filter` selects) for async-job traffic."""

    def __init__(self) -> None:
        self.session = Session()
        self._serial = itertools.count(1)  # job numbers stay unique when settings rebuild the tracker
        self.tracker = Tracker(key_prefix=self.session.id + "/", serial=self._serial)
        self.store: Store | None = None
        self.filter: flowfilter.TFilter | None = None
        self.internal_errors = 0
        self.annotate = True  # pollwatch_annotate and pollwatch_fix, kept here: reading an option
        self.fix: str | None = None  # copies its value, and these are read for every flow
        self.seen_live = False
        self._ticker: asyncio.Task | None = None
        self._flow_jobs: OrderedDict[str, str] = OrderedDict()  # flow id -> job key
        self._listeners: list[Callable[[http.HTTPFlow, Update], None]] = []
        self.batch = FlowBatch(lambda flow, observation: self._feed(flow, observation, True), self._announce_changed)
        self.verifier = Verifier(self._verified)
        self.worker = WorkerWatch(self._worker_events)

    def load(self, loader) -> None:
        add = loader.add_option
        add("pollwatch_db", str, "pollwatch.sqlite", "SQLite file for jobs, polls and findings; empty to keep nothing.")
        add("pollwatch_session", str | None, None, "Label for this capture session in the database.")
        add("pollwatch_filter", str | None, None, "Only watch flows matching this filter expression (e.g. '~d api.example.com').")
        add("pollwatch_contract", str | None, None, "Contract file (pollwatch contract infer) that teaches recognition; "
            "the options below add to it.")
        add("pollwatch_id_fields", Sequence[str], [], "Extra JSON fields (dotted paths) that name a job id.")
        add("pollwatch_status_headers", Sequence[str], [], "Extra response headers that carry a status URL.")
        add("pollwatch_templates", Sequence[str], [], "Status-URL templates such as /v1/reports/status/{id}.")
        add("pollwatch_state_fields", Sequence[str], [], "Extra JSON fields (dotted paths) holding the job state.")
        add("pollwatch_states", Sequence[str], [], "Extra state words as WORD=STATE (queued, running, succeeded, failed, cancelled, expired).")
        add("pollwatch_id_headers", Sequence[str], [], "Extra request/operation id headers to record.")
        add("pollwatch_abandon_after", int, 60, "Seconds without a poll before a non-terminal job is called abandoned.")
        add("pollwatch_stuck_after", int, 300, "Seconds in one non-terminal state before stuck-non-terminal.")
        add("pollwatch_stale_date", int, 5, "A Date header older than the response's arrival by this many seconds is stale.")
        add("pollwatch_keep_bodies", bool, False, "Store response body excerpts in the database (they may hold secrets).")
        add("pollwatch_annotate", bool, True, "Mark and comment flows that carry findings.")
        add("pollwatch_batch", int, DEFAULT_SIZE, "More than 1 (64 is good): live flows handled together after "
            "their hooks, up to this many or 0.1 s after the first: up to half pollwatch's CPU per flow, findings "
            "up to 0.1 s later, a longer tail of latency. Off with -w, pollwatch_fix or pollwatch_verify.")
        add("pollwatch_verify", bool, False, "Active verification: when a cache answered a status poll (or may "
            "answer the next), fetch the status URL from the origin itself (GET, the client's credentials, "
            "Cache-Control: no-cache, X-Pollwatch-Check: 1) and compare.")
        add("pollwatch_verify_interval", int, 2, "Origin checks: at most one per job every this many seconds.")
        add("pollwatch_verify_timeout", int, 5, "Origin checks: seconds before an unanswered check counts as failed.")
        add("pollwatch_fix", str | None, None, "Try a fix without changing the server: 'no-store' sends status "
            "responses of tracked jobs with Cache-Control: no-store and no validators (findings use the originals).")
        add_worker_options(add)

    def configure(self, updated: set[str]) -> None:
        self.batch.flush()  # queued flows are handled with the settings they arrived under
        if "pollwatch_batch" in updated:
            if ctx.options.pollwatch_batch < 1:
                raise exceptions.OptionsError("pollwatch_batch: must be 1 or more")
            self.batch.size = ctx.options.pollwatch_batch
        if updated & CORE_OPTIONS:
            if self.tracker.jobs:
                log.info(f"{PREFIX} settings changed: job tracking starts afresh")
            self.tracker = Tracker(self._config(), key_prefix=self.session.id + "/", serial=self._serial)
            fix = {"fix": self.session.settings["fix"]} if "fix" in self.session.settings else {}
            self.session.settings = self.tracker.config.model_dump() | fix
        if "pollwatch_annotate" in updated:
            self.annotate = ctx.options.pollwatch_annotate
        if "pollwatch_filter" in updated:
            self.filter = self._parse_filter(ctx.options.pollwatch_filter)
        if "pollwatch_fix" in updated:
            self._note_fix(ctx.options.pollwatch_fix)
        if "pollwatch_db" in updated or "pollwatch_session" in updated:
            self._open_store()
        if updated & VERIFY_OPTIONS:
            self._configure_verifier()
        if updated & WORKER_OPTIONS:
            self.session.settings |= configure_worker(self.worker, ctx.options)
        # each flow in its hook: -w saves it with its marks, the fix switch and origin checks read it there
        self.batch.in_hooks = bool(getattr(ctx.options, "save_stream_file", None) or self.fix or self.verifier.enabled)

    def running(self) -> None:
        self.batch.start(asyncio.get_running_loop())
        self.worker.start()
        if self._ticker is None:
            self._ticker = create_task(self._tick_forever(), name="pollwatch lifecycle ticker")

    def response(self, flow: http.HTTPFlow) -> None:
        self._observe(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._observe(flow)

    def done(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.batch.stop()
        self.verifier.close()
        with self._guard():
            self.worker.drain()  # what the worker wrote last
            self.worker.stop()
            self._announce(self.tracker.finish())
        if self.store is not None:
            path = self.store.path
            self.store.close()
            if self.store.rows_lost:  # `pollwatch run` exits 1 on this; plain mitmdump cannot be told to
                log.error(safe_text(f"{PREFIX} {self.store.rows_lost} row(s) could not be written to {path} "
                                    f"({self.store.first_error}); the database misses them"))
            self.store = None
            if self.worker.active:
                with self._guard():
                    recompute_file(path)  # joins the events to their jobs, sums up unlinked ones
        if self.internal_errors:
            log.error(f"{PREFIX} {self.internal_errors} internal error(s) while watching; traffic was not affected.")

    @command.command("pollwatch.jobs")
    def jobs(self) -> Sequence[str]:
        """The jobs pollwatch is tracking, one line each: id, states, polls, status URL."""
        self.batch.flush()
        lines = [f"{len(self.tracker.jobs)} job(s)"]
        for job in self.tracker.jobs.values():
            states = " > ".join(s.value for s in job.states) or "-"
            lines.append(f"{job.job_id:<24} {states:<40} polls={job.polls:<4} {job.status_url or '-'}")
        return [safe_text(line) for line in lines]

    @command.command("pollwatch.job")
    def job(self, flows: Sequence[mflow.Flow]) -> Sequence[str]:
        """Which job each flow belongs to: `FLOW-ID JOB-ID (key KEY)`, or `FLOW-ID -` for none."""
        self.batch.flush()
        lines = []
        for f in flows:
            job = self.tracker.jobs.get(self._flow_jobs.get(f.id, ""))
            lines.append(f"{f.id} {job.job_id} (key {job.key})" if job else f"{f.id} -")
        return [safe_text(line) for line in lines]

    def _note_fix(self, fix: str | None) -> None:
        """The fix switch's setting is part of the session, so the database says it was on."""
        if fix and fix not in FIXES:
            raise exceptions.OptionsError(f"pollwatch_fix: {fix!r} is not one of {', '.join(FIXES)}")
        self.fix = fix
        if fix:
            self.session.settings["fix"] = fix
        else:
            self.session.settings.pop("fix", None)

    def job_key_of(self, flow: http.HTTPFlow) -> str | None:
        """The key of the job this flow was tied to (after its response was observed)."""
        self.batch.flush()
        return self._flow_jobs.get(flow.id)

    def on_handled(self, listener: Callable[[http.HTTPFlow, Update], None]) -> None:
        """Call `listener` with every job flow and the tracker's update, right after it is handled
        (the live view copies the job's snapshot from it)."""
        self._listeners.append(listener)

    def unwatch(self, flow: http.HTTPFlow) -> None:
        """A flow pollwatch answers itself (the live job view): never observed as job traffic."""
        flow.metadata[UNWATCHED] = True

    def polls_a_job(self, flow: http.HTTPFlow) -> bool:
        """Whether this request (before its response) is a status poll of a tracked job."""
        with self._guard():
            self.batch.flush()
            match = self.tracker.index.match_poll(observation_from_flow(flow))
            return match is not None and match.job is not None and match.matched_by in STATUS_MATCHES
        return False

    # --- internals ----------------------------------------------------------------------------

    def _observe(self, flow: http.HTTPFlow) -> None:
        """The hook's part: the flow as it is now, queued for its batch or handled at once."""
        try:  # not `with self._guard()`: a generator context manager costs every flow
            if flow.metadata.get(UNWATCHED) or (self.filter is not None and not self.filter(flow)):
                return
            if raw_header(flow.request.data.headers.fields, CHECK_HEADER_RAW) is not None:
                return  # pollwatch's own origin check, come through a proxy after all
            observation = observation_from_flow(flow)
            if not self.batch.offer(flow, observation):
                self._feed(flow, observation, flow.live)
        except Exception:
            self._internal_error()

    def _announce_changed(self, flows: list[http.HTTPFlow]) -> None:
        """Flows a batch marked or commented, announced so that mitmweb and the console show it."""
        with self._guard():
            ctx.master.addons.trigger(UpdateHook(flows))

    def _feed(self, flow: http.HTTPFlow, observation: Observation, live: bool) -> bool:
        """Feed one flow to the tracker; True when the flow was marked or commented. `live`: it came
        through the proxy now (a queued flow did, though mitmproxy no longer says so once it is done)."""
        try:
            self.seen_live = self.seen_live or live
            update = self.tracker.observe(observation)
            return update is not None and self._handle(flow, update, live)
        except Exception:
            self._internal_error()
            return False

    def _handle(self, flow: http.HTTPFlow, update: Update, live: bool) -> bool:
        """Job traffic: store it, mark the flow, say what is new, consider an origin check."""
        self.worker.judge_update(update)
        if update.job is not None:
            self._remember(flow.id, update.job.key)
        if self.store is not None:
            self.store.submit(update)
        marked = self.annotate and annotate(flow, update)
        for listener in self._listeners:  # before the rest: a fault there must not keep the job off the view
            try:
                listener(flow, update)
            except Exception:
                self._internal_error()
        for each in update.all():
            for finding in each.new_findings:
                self._log(finding, live=live)
        if live:  # recorded or replayed traffic: its origin is not asked
            self.verifier.consider(flow, update, self.tracker.config.stale_date_after)
        return marked

    def _remember(self, flow_id: str, job_key: str) -> None:
        self._flow_jobs[flow_id] = job_key
        if len(self._flow_jobs) > FLOWS_REMEMBERED:
            self._flow_jobs.popitem(last=False)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if self.seen_live:
                self.tick(time.time())

    def tick(self, now: float) -> None:
        """The time-based rules (the ticker calls this about once a second while traffic is live)."""
        with self._guard():
            self.batch.flush()
            findings = self.tracker.tick(now)
            self._announce(findings)
            self.verifier.abandoned(findings)

    def _worker_events(self, events: list[WorkerEvent]) -> None:
        """Worker log lines read while following: stored with this session."""
        if self.store is not None:
            self.store.submit_worker_events(events)

    def _verified(self, plan: CheckPlan, answer: OriginAnswer) -> None:
        """An origin check came back (on the event loop): store it, say what it found."""
        with self._guard():
            self.batch.flush()
            record, findings = self.tracker.verified(plan, answer)
            if self.store is not None:
                self.store.submit_check(record)
            job = self.tracker.jobs.get(plan.job_key)
            log.info(safe_text(f"{PREFIX} origin check of job {job.job_id if job else plan.job_key} ({record.reason}): "
                               f"GET {record.url} -> {record.status or record.detail}: {record.result}"))
            self._announce(findings)

    def _announce(self, findings: list[Finding]) -> None:
        if not findings:
            return
        if self.store is not None:
            self.store.submit_findings(findings)
        for finding in findings:
            if not finding.is_repeat:
                self._log(finding)

    @staticmethod
    def _log(finding: Finding, *, live: bool = True) -> None:
        """One line per finding. Recorded flows (`mitmdump -nr`) are replayed during mitmproxy's
        start-up, when an ERROR record makes mitmdump exit; there errors are logged at WARNING
        level (the line still says `error:`)."""
        level = LEVELS[finding.severity] if live else min(LEVELS[finding.severity], logging.WARNING)
        log.log(level, safe_text(f"{PREFIX} {finding.severity.value}: {finding.line()}"))

    def guard(self) -> contextlib.AbstractContextManager[None]:
        """For addons beside this one: their errors are counted with pollwatch's, never raised."""
        return self._guard()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Never let a pollwatch bug reach the traffic: count it, report the first one."""
        try:
            yield
        except Exception:
            self._internal_error()

    def _internal_error(self) -> None:
        """Called inside an `except` block: count the error, report the first one with its traceback."""
        self.internal_errors += 1
        if self.internal_errors == 1:
            log.error(safe_text(f"{PREFIX} internal error (the flow passed unchanged; further errors are only "
                                f"counted)\n{traceback.format_exc()}"))  # the message may quote the traffic

    def _config(self) -> Config:
        o = ctx.options
        try:
            return contract_config(
                o.pollwatch_contract,
                id_fields=list(o.pollwatch_id_fields), status_headers=list(o.pollwatch_status_headers),
                templates=list(o.pollwatch_templates), state_fields=list(o.pollwatch_state_fields),
                states=Config.parse_state_pairs(list(o.pollwatch_states)), id_headers=list(o.pollwatch_id_headers),
                abandon_after=o.pollwatch_abandon_after, stuck_after=o.pollwatch_stuck_after,
                stale_date_after=o.pollwatch_stale_date, keep_bodies=o.pollwatch_keep_bodies,
            )
        except ConfigError as exc:
            raise exceptions.OptionsError(f"pollwatch: {exc}") from exc
        except (ValidationError, ValueError) as exc:
            raise exceptions.OptionsError(f"pollwatch: {first_line(exc)}") from exc

    def _configure_verifier(self) -> None:
        o = ctx.options
        if o.pollwatch_verify_interval < 0 or o.pollwatch_verify_timeout <= 0:
            raise exceptions.OptionsError("pollwatch: pollwatch_verify_interval must be 0 or more and "
                                          "pollwatch_verify_timeout more than 0 seconds")
        self.verifier.configure(enabled=o.pollwatch_verify, interval=o.pollwatch_verify_interval,
                                timeout=o.pollwatch_verify_timeout,
                                trust=Trust(insecure=o.ssl_insecure, ca_file=o.ssl_verify_upstream_trusted_ca,
                                            ca_dir=o.ssl_verify_upstream_trusted_confdir))

    def _open_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        path = ctx.options.pollwatch_db
        if not path:
            return
        self.session.label = ctx.options.pollwatch_session
        try:
            self.store = Store(path, self.session).start()
        except StorageError as exc:
            raise exceptions.OptionsError(str(exc)) from exc
        log.info(safe_text(f"{PREFIX} recording jobs to {path} (session {self.session.id})"))

    @staticmethod
    def _parse_filter(expression: str | None) -> flowfilter.TFilter | None:
        if not expression:
            return None
        try:
            return flowfilter.parse(expression)
        except ValueError as exc:
            raise exceptions.OptionsError(f"pollwatch_filter: {exc}") from exc
