"""The per-job state machine: ties each exchange to its job, reads the state it delivers, applies
the rules and reports what changed.

`Tracker.observe` is the single entry point for live and offline traffic alike; `tick` and
`finish` run the time-based rules (polling-abandoned, stuck-non-terminal). Finding jobs again is
`JobIndex`'s concern, reading states `reading`'s, judging the `rules`' and naming the findings
and records this module's.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

from pollwatch.core.cache import REQUEST_CACHE_HEADERS, RESPONSE_CACHE_HEADERS, CacheAnalysis, analyse, parse_retry_after, pick
from pollwatch.core.config import Config
from pollwatch.core.findings import CATALOGUE, Finding
from pollwatch.core.index import POLL_METHODS, JobIndex, Match
from pollwatch.core.job import Job, RecentPoll
from pollwatch.core.lookalike import closest_id
from pollwatch.core.observation import Observation
from pollwatch.core.reading import Reading, looks_like_status, read_state
from pollwatch.core.records import PollRecord, Transition, Update
from pollwatch.core.references import JobReference, Template, find_reference, is_job_creation, request_ids, self_reference
from pollwatch.core.rules import CREATION_RULES, POLL_RULES, PollFacts, Raise, polling_abandoned, stuck_non_terminal
from pollwatch.core.states import State, parse_json_object
from pollwatch.core.urls import origin_of

LOOKALIKE_WINDOW = 500  # recent jobs an unknown id is compared with


class Tracker:
    """Feeds observations through job recognition, state reading and the rules."""

    def __init__(self, config: Config | None = None, *, key_prefix: str = "",
                 serial: Iterator[int] | None = None) -> None:
        """`serial` numbers jobs; pass the previous tracker's to keep keys unique in a session."""
        self.config = config or Config()
        self._vocabulary = self.config.vocabulary()
        self._state_fields = self.config.all_state_fields()
        self.index = JobIndex([Template.parse(t) for t in self.config.templates], self.config.max_jobs)
        self._key_prefix = key_prefix
        self._serial = serial or itertools.count(1)
        self.clock = 0.0  # the latest timestamp seen: "now" for recorded traffic

    @property
    def jobs(self) -> dict[str, Job]:
        """Remembered jobs by key, oldest first."""
        return self.index.jobs

    # --- entry points ------------------------------------------------------------------------

    def observe(self, obs: Observation) -> Update | None:
        """Process one exchange; None when it is not job traffic."""
        self.clock = max(self.clock, obs.response_ts, obs.request_ts)
        match = self.index.match_poll(obs)
        if match is not None and match.matched_by != "template":
            return self._poll(obs, match)
        if is_job_creation(obs.status, obs.response_headers, self.config.status_headers):
            return self._create(obs)  # before an unknown id: a new GET-202 monitor fits a template too
        return self._poll(obs, match) if match is not None else None

    def tick(self, now: float) -> list[Finding]:
        """Time-based rules for jobs still in flight; call about once a second while live."""
        return self._lifecycle(now, capture_ended=False)

    def finish(self, end_ts: float | None = None) -> list[Finding]:
        """End of capture: every job still without a terminal state counts as abandoned."""
        return self._lifecycle(self.clock if end_ts is None else end_ts, capture_ended=True)

    def _lifecycle(self, now: float, *, capture_ended: bool) -> list[Finding]:
        findings: list[Finding] = []
        for job in self.index.active.values():
            if job.finished or job.abandoned:
                continue
            stuck = stuck_non_terminal(job, now, self.config)
            if stuck is not None and self._scope_key(job, stuck) not in job.counts:
                findings.append(self._finding(job, stuck, flow_id=None, ts=now))
            abandoned = polling_abandoned(job, now, self.config, capture_ended=capture_ended)
            if abandoned is not None:
                findings.append(self._finding(job, abandoned, flow_id=None, ts=now))
                job.abandoned = True
        self.index.active = {k: j for k, j in self.index.active.items() if not (j.finished or j.abandoned)}
        return findings

    # --- creation -----------------------------------------------------------------------------

    def _create(self, obs: Observation) -> Update:
        document = parse_json_object(obs.content())
        ref = find_reference(obs.url, obs.response_headers, document,
                             extra_headers=self.config.status_headers, extra_id_fields=self.config.id_fields)
        if ref.job_id is None and obs.method.upper() in POLL_METHODS:
            ref = self_reference(obs.url)  # GitHub-style: a GET answered 202 is its own monitor
        if ref.job_id is None:
            return Update(findings=[self._orphan_finding(obs)])
        job = self._new_job(ref, obs, created_by="response")
        job.create_method, job.create_url = obs.method.upper(), obs.url
        job.create_status, job.create_flow_id = obs.status, obs.flow_id
        job.monitor = ref.source == "request-url"
        reading = self._read(obs, None, document)  # only the body speaks for a creating response
        transitions = self._deliver(job, reading, obs)
        self._note_retry_after(job, obs)
        job.last_activity = obs.response_ts
        job.updated_at = obs.response_ts
        analysis = analyse(obs.response_headers, obs.status, obs.response_ts, obs.served_from)
        findings = []
        if obs.method.upper() in POLL_METHODS:
            facts = PollFacts(obs=obs, analysis=analysis, reading=reading, matched_by="create", config=self.config)
            findings = [self._finding(job, r, flow_id=obs.flow_id, ts=obs.response_ts)
                        for rule in CREATION_RULES if (r := rule(job, facts)) is not None]
        poll = self._record(job, obs, "create", "create", reading, analysis)
        return Update(job=job.snapshot(), poll=poll, transitions=transitions, findings=findings)

    def _new_job(self, ref: JobReference, obs: Observation, *, created_by: str) -> Job:
        assert ref.job_id is not None
        job = Job(key=f"{self._key_prefix}{next(self._serial)}", job_id=ref.job_id, aliases=ref.aliases,
                  status_url=ref.status_url, host=origin_of(ref.status_url or obs.url), created_at=obs.response_ts,
                  created_by=created_by, reference_source=ref.source,
                  operation_ids=request_ids(obs.response_headers, self.config.id_headers))
        self.index.add(job, ref)
        return job

    # --- polls --------------------------------------------------------------------------------

    def _poll(self, obs: Observation, match: Match) -> Update | None:
        document = parse_json_object(obs.content())
        job = match.job
        reading = self._read(obs, job, document)
        if match.matched_by != "canonical" and not looks_like_status(obs.status, reading):
            return None  # related traffic (a result download, say), not a status poll
        analysis = analyse(obs.response_headers, obs.status, obs.response_ts, obs.served_from)
        raised: list[Raise] = []
        if job is None:
            assert match.unknown_id is not None
            raised.append(self._unknown_job(match.unknown_id, obs))
            ref = JobReference(job_id=match.unknown_id, status_url=obs.url, source="poll", aliases=[match.unknown_id])
            job = self._new_job(ref, obs, created_by="poll")
            job.created_at = obs.request_ts
        elif match.matched_by == "first-poll":
            job.status_url = obs.url
            self.index.index_status_url(job, obs.url)

        facts = PollFacts(obs=obs, analysis=analysis, reading=reading, matched_by=match.matched_by, config=self.config)
        raised += [r for rule in POLL_RULES if (r := rule(job, facts)) is not None]

        self._count_poll(job, obs, match, reading)
        transitions = self._deliver(job, reading, obs)
        if not (job.finished or job.abandoned):
            self.index.active[job.key] = job
        if reading.state is not None and reading.state.terminal:
            job.terminal_seen_by.setdefault(obs.client, obs.response_ts)
        if reading.state is not None and reading.state.rank is not None:
            job.recent.append(RecentPoll(obs.request_ts, obs.response_ts, reading.state))
        findings = [self._finding(job, r, flow_id=obs.flow_id, ts=obs.response_ts) for r in raised]
        poll = self._record(job, obs, "poll", match.matched_by, reading, analysis)
        return Update(job=job.snapshot(), poll=poll, transitions=transitions, findings=findings)

    def _count_poll(self, job: Job, obs: Observation, match: Match, reading: Reading) -> None:
        """What one poll teaches about its job (after the rules judged it against the job as it was)."""
        if job.last_poll_at is not None:
            job.intervals.append(obs.request_ts - job.last_poll_at)
        seen_at = job.terminal_seen_by.get(obs.client)
        if seen_at is not None and obs.request_ts >= seen_at:
            job.polls_after_terminal += 1
        job.polls += 1
        job.last_poll_at = obs.request_ts
        job.last_activity = max(job.last_activity, obs.response_ts)
        job.updated_at = obs.response_ts
        if obs.status == 404 and match.matched_by in ("canonical", "same-path", "template"):
            job.ended = "missing"
        elif reading.state is not None and job.ended == "missing":
            job.ended = None  # a read-after-write 404 that healed
        if obs.status == 202 and reading.source == "status-code":
            job.monitor = True
        self._note_retry_after(job, obs)
        job.operation_ids.update(request_ids(obs.response_headers, self.config.id_headers))
        etag = obs.response_headers.get("etag")
        if etag and reading.state is not None and reading.state is not State.UNKNOWN and obs.status != 304:
            job.remember_etag(etag, reading.state)

    def _read(self, obs: Observation, job: Job | None, document: object) -> Reading:
        return read_state(obs, job, document, fields=self._state_fields, vocabulary=self._vocabulary)

    def _deliver(self, job: Job, reading: Reading, obs: Observation) -> list[Transition]:
        state = reading.state
        if state is None or state is State.UNKNOWN:
            return []
        before = job.last_state
        if not job.deliver(state, obs.response_ts):
            return []
        return [Transition(job_key=job.key, flow_id=obs.flow_id, from_state=before.value if before else None,
                           to_state=state.value, ts=obs.response_ts)]

    def _note_retry_after(self, job: Job, obs: Observation) -> None:
        """Retry-After is advice to the client that received it."""
        value = obs.response_headers.get("retry-after")
        seconds = parse_retry_after(value, obs.response_ts) if value else None
        if seconds is None:
            job.retry_after_for.pop(obs.client, None)
        else:
            job.retry_after_for[obs.client] = (seconds, obs.response_ts)
            job.retry_after = seconds

    # --- findings -----------------------------------------------------------------------------

    def _scope_key(self, job: Job | None, raised: Raise, flow_id: str | None = None, ts: float = 0.0) -> str:
        """The finding's identity: per occurrence (scope None), per job, or per job and scope."""
        owner = job.key if job else self._key_prefix
        if raised.scope is None:
            return f"{owner}:{raised.code}:{flow_id or ts}"
        return f"{owner}:{raised.code}" + (f":{raised.scope}" if raised.scope else "")

    def _finding(self, job: Job | None, raised: Raise, *, flow_id: str | None, ts: float) -> Finding:
        kind = CATALOGUE[raised.code]
        key = self._scope_key(job, raised, flow_id, ts)
        earlier = job.counts.get(key) if job else None
        count = earlier.count + 1 if earlier else 1
        finding = Finding(
            key=key, code=raised.code, severity=kind.severity, job_key=job.key if job else None,
            job_id=job.job_id if job else None,
            flow_id=earlier.flow_id if earlier else flow_id, ts=earlier.ts if earlier else ts,
            message=raised.message, evidence=raised.evidence | ({"count": count} if count > 1 else {}),
            count=count,
        )
        if job is not None and raised.scope is not None:
            job.counts[key] = finding
        return finding

    def _orphan_finding(self, obs: Observation) -> Finding:
        raised = Raise("accepted-without-job-reference",
                       f"{obs.method} {obs.url} answered {obs.status} with no status URL header and no job id in the body.",
                       {"method": obs.method, "url": obs.url, "status": obs.status,
                        "headers": sorted(obs.response_headers)}, scope=None)
        return self._finding(None, raised, flow_id=obs.flow_id, ts=obs.response_ts)

    def _unknown_job(self, unknown_id: str, obs: Observation) -> Raise:
        recent = itertools.islice(reversed(self.jobs.values()), LOOKALIKE_WINDOW)
        lookalike = closest_id(unknown_id, [j.job_id for j in recent][::-1])
        if lookalike is not None:
            why = f"it looks like a mangled copy of job {lookalike}: the client lost or corrupted its job id."
        else:
            why = "it resembles no job created during this capture: the capture probably started after the job was created."
        return Raise("unknown-job", f"poll for id {unknown_id!r}, which no 202 returned; {why}",
                     {"id": unknown_id, "url": obs.url, "lookalike": lookalike,
                      "likely": "mangled-id" if lookalike else "capture-started-late"}, scope=None)

    # --- records ------------------------------------------------------------------------------

    def _record(self, job: Job, obs: Observation, kind: str, matched_by: str, reading: Reading,
                analysis: CacheAnalysis) -> PollRecord:
        return PollRecord(
            job_key=job.key, flow_id=obs.flow_id, kind=kind, matched_by=matched_by,  # type: ignore[arg-type]
            method=obs.method.upper(), url=obs.url, status=obs.status, request_ts=obs.request_ts,
            response_ts=obs.response_ts, raw_state=reading.raw,
            state=reading.state.value if reading.state else None, state_source=reading.source,
            cache_verdict=analysis.verdict.value, freshness_lifetime=analysis.freshness_lifetime,
            served_by=analysis.served_by.value,
            response_cache_headers=pick(obs.response_headers, RESPONSE_CACHE_HEADERS),
            request_cache_headers=pick(obs.request_headers, REQUEST_CACHE_HEADERS),
            retry_after=parse_retry_after(obs.response_headers.get("retry-after"), obs.response_ts),
            ids=request_ids(obs.response_headers, self.config.id_headers) | request_ids(obs.request_headers, self.config.id_headers),
            body_sha256=hashlib.sha256(obs.content()).hexdigest() if obs.content() else None,
            client=obs.client,
            body=obs.body.decode("utf-8", "replace") if self.config.keep_bodies and obs.body else None,
        )
