"""The per-job state machine: ties each exchange to its job, reads the state it delivers, applies
the rules and reports what changed.

`Tracker.observe` is the single entry point for live and offline traffic alike; `tick` and
`finish` run the time-based rules (polling-abandoned, stuck-non-terminal). Finding jobs again is
`JobIndex`'s concern, reading states `reading`'s, judging the `rules`' and naming the findings
and records this module's.

Longer than most modules (about 400 lines) because creation, polls, jobs found late and the
lifecycle share the tracker's state; each part is a short method, and the decisions live in the
modules named above.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

from pollwatch.core.cache import REQUEST_CACHE_HEADERS, RESPONSE_CACHE_HEADERS, CacheAnalysis, analyse, parse_retry_after, pick
from pollwatch.core.config import Config
from pollwatch.core.discovery import Candidate, Discovery, Mutation
from pollwatch.core.documents import collect_ids, is_id_key, is_own_id_key, layers, looks_like_id, scalar_id
from pollwatch.core.findings import Finding, Severity
from pollwatch.core.index import POLL_METHODS, JobIndex, Match
from pollwatch.core.job import Job
from pollwatch.core.lookalike import closest_id
from pollwatch.core.observation import Headers, Observation
from pollwatch.core.reading import NOTHING, Reading, looks_like_status, read_state
from pollwatch.core.records import PollRecord, Transition, Update
from pollwatch.core.references import (
    CREATED, MUTATING_METHODS, JobReference, Template, find_reference, id_from_url, id_header_names, is_job_creation,
    names_a_job, request_ids, self_reference,
)
from pollwatch.core.naming import FindingNamer
from pollwatch.core.rules import (
    CREATION_RULES, HEALTHY_NOT_MODIFIED, POLL_RULES, PollFacts, Raise, accepted_without_job_reference, polling_abandoned,
    stuck_non_terminal, unknown_job,
)
from pollwatch.core.states import State, parse_json_object, says_work_in_progress, state_of
from pollwatch.core.urls import origin_of, path_segments, url_tokens
from pollwatch.core.verification import CheckPlan, CheckRecord, OriginAnswer, judge

LOOKALIKE_WINDOW = 500  # recent jobs an unknown id is compared with


class Tracker:
    """Feeds observations through job recognition, state reading and the rules."""

    _no_headers = Headers()

    def __init__(self, config: Config | None = None, *, key_prefix: str = "",
                 serial: Iterator[int] | None = None) -> None:
        """`serial` numbers jobs; pass the previous tracker's to keep keys unique in a session."""
        self.config = config or Config()
        self._vocabulary = self.config.vocabulary()
        self._state_fields = self.config.all_state_fields()
        self._id_names = id_header_names(self.config.id_headers)
        self.index = JobIndex([Template.parse(t) for t in self.config.templates], self.config.max_jobs)
        self._key_prefix = key_prefix
        self._serial = serial or itertools.count(1)
        self.discovery = Discovery()
        self._namer = FindingNamer(key_prefix)
        self._state_markers = tuple(f'"{f.rsplit(".", 1)[-1]}"'.encode() for f in self._state_fields) + (b'"done"',)
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
        method = obs.method.upper()
        mutating = method in MUTATING_METHODS and obs.status in CREATED
        if mutating and self._acts_on_a_running_job(obs):
            return None  # a cancel or an update of a job in flight, not a new job
        document = parse_json_object(obs.content()) if mutating else None
        strong = is_job_creation(obs, self.config.status_headers)
        if strong or (mutating and self._names_a_running_job(document)):
            update = self._create(obs, learn=strong)  # before an unknown id: a GET-202 monitor fits a template too
            if mutating:
                self._remember_mutation(obs, document, update.job.key if update.job else None)
            return update
        if mutating:
            self._remember_mutation(obs, document, None)
            return None
        if match is not None:  # fits a status-URL template, for an id no job has
            return self._unclaimed(obs, match) or self._poll(obs, match)
        if method in POLL_METHODS and obs.status is not None and 200 <= obs.status < 300:
            return self._unclaimed(obs)
        return None

    def tick(self, now: float) -> list[Finding]:
        """Time-based rules for jobs still in flight; call about once a second while live."""
        return self._lifecycle(now, capture_ended=False)

    def finish(self, end_ts: float | None = None) -> list[Finding]:
        """End of capture: every job still without a terminal state counts as abandoned."""
        return self._lifecycle(self.clock if end_ts is None else end_ts, capture_ended=True)

    def verified(self, plan: CheckPlan, answer: OriginAnswer) -> tuple[CheckRecord, list[Finding]]:
        """What pollwatch's own origin check of a poll found (see verification.py)."""
        job, obs = self.jobs.get(plan.job_key), answer.observation(plan)
        reading = self._read(obs, job, parse_json_object(obs.content())) if obs.status is not None else NOTHING
        return judge(job, plan, answer, reading, self._namer)

    def _lifecycle(self, now: float, *, capture_ended: bool) -> list[Finding]:
        findings: list[Finding] = []
        for job in self.index.active.values():
            if job.finished or job.abandoned:
                continue
            stuck = stuck_non_terminal(job, now, self.config)
            if stuck is not None and self._namer.scope_key(job, stuck) not in job.counts:
                findings.append(self._finding(job, stuck, flow_id=None, ts=now))
            abandoned = polling_abandoned(job, now, self.config, capture_ended=capture_ended)
            if abandoned is not None:
                findings.append(self._finding(job, abandoned, flow_id=None, ts=now))
                job.abandoned = True
        self.index.active = {k: j for k, j in self.index.active.items() if not (j.finished or j.abandoned)}
        return findings

    # --- creation -----------------------------------------------------------------------------

    def _create(self, obs: Observation, *, learn: bool = True) -> Update:
        document = parse_json_object(obs.content())
        ref = find_reference(obs.url, obs.response_headers, document,
                             extra_headers=self.config.status_headers, extra_id_fields=self.config.id_fields)
        method = obs.method.upper()
        if ref.job_id is None and obs.status == 202 and method != "POST":
            ref = self_reference(obs.url, method=method)  # a GET answered 202 is its own monitor; a
            # PUT/PATCH/DELETE answered 202 is followed on the resource it changed
        if ref.job_id is None:
            return Update(findings=[self._finding(None, accepted_without_job_reference(obs), flow_id=obs.flow_id,
                                                  ts=obs.response_ts)])
        job = self._new_job(ref, obs, created_by="response", learn=learn)
        self._note_creation(job, obs)
        job.status_reference, job.referenced_url = ref.raw, ref.status_url
        reading = self._read(obs, None, document)  # only the body speaks for a creating response
        # A bare 202 + Location names a monitor (RFC 9110): its 200/201/204 means done, even on the
        # first poll. When the 202 already spoke in a state field, its status documents do too.
        job.monitor = ref.source == "request-url" or (ref.source == "location" and obs.status == 202
                                                      and reading.state is None)
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

    def _note_creation(self, job: Job, obs: Observation) -> None:
        job.create_method, job.create_url = obs.method.upper(), obs.url
        job.create_status, job.create_flow_id = obs.status, obs.flow_id

    def _acts_on_a_running_job(self, obs: Observation) -> bool:
        """A mutation of a job in flight (a cancel, a DELETE of the running job) is no new job."""
        return any(not (job.finished or job.abandoned) for job in self.index.jobs_named_by(obs.url))

    def _names_a_running_job(self, document: object) -> bool:
        """A mutating response whose body names a job (an id or a link) in a non-terminal state:
        a job created by a 200/201, as many task APIs answer. A synchronous create (an id and no
        state, or a final state) is not one."""
        if not isinstance(document, dict):
            return False
        found = state_of(document, self._state_fields, self._vocabulary)
        if found is None or found.state is State.UNKNOWN or found.state.terminal:
            return False
        ref = find_reference("http://x/", self._no_headers, document, extra_id_fields=self.config.id_fields)
        return ref.job_id is not None and (says_work_in_progress(found.raw) or names_a_job(ref, document))

    def _remember_mutation(self, obs: Observation, document: object, job_key: str | None) -> None:
        """Ids a mutation returned or addressed: a later poll may name them (late binding)."""
        returned: list[str] = []
        if isinstance(document, dict):  # what it returned for the thing it created, not ids it lists
            ref = find_reference(obs.url, self._no_headers, document, extra_id_fields=self.config.id_fields)
            own = [v for layer in layers(document) for k, raw in layer.items()
                   if isinstance(k, str) and is_id_key(k) and (v := scalar_id(raw)) is not None]
            returned = [i for i in dict.fromkeys([*ref.aliases, *own]) if looks_like_id(i)]
        url_ids = [s for s in path_segments(obs.url) if looks_like_id(s)]
        self.discovery.remember_mutation(obs, returned, url_ids, job_key)

    def _new_job(self, ref: JobReference, obs: Observation, *, created_by: str, learn: bool = False) -> Job:
        assert ref.job_id is not None
        job = Job(key=f"{self._key_prefix}{next(self._serial)}", job_id=ref.job_id, aliases=ref.aliases,
                  status_url=ref.status_url, host=origin_of(ref.status_url or obs.url), created_at=obs.response_ts,
                  created_by=created_by, reference_source=ref.source,
                  operation_ids=request_ids(obs.response_headers, self._id_names))
        self.index.add(job, ref, learn=learn)
        return job

    # --- polls --------------------------------------------------------------------------------

    def _poll(self, obs: Observation, match: Match) -> Update | None:
        job = match.job
        if job is not None and job.reference_source == "discovered" and job.finished:
            return None  # known only from its polls: after it ended, a read is a read, not a poll
        document = parse_json_object(obs.content())
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
        elif match.matched_by == "first-poll" or (match.matched_by in ("result", "off-host") and job.polls == 0):
            job.status_url = obs.url  # where the client reads the job's status: the result of a task,
            self.index.index_status_url(job, obs.url)  # or the status path on the host it called
            job.host = origin_of(obs.url)

        facts = PollFacts(obs=obs, analysis=analysis, reading=reading, matched_by=match.matched_by, config=self.config)
        raised += [r for rule in POLL_RULES if (r := rule(job, facts)) is not None]

        followed = job.etag_follows_state
        self._count_poll(job, obs, match, reading)
        transitions = self._deliver(job, reading, obs)
        if not (job.finished or job.abandoned):
            self.index.active[job.key] = job
        if reading.state is not None and reading.state.terminal:
            job.note_terminal_seen(obs.client, obs.response_ts)
        if reading.state is not None and reading.state.rank is not None:
            job.note_poll(obs.request_ts, obs.response_ts, reading.state)
        findings = [self._finding(job, r, flow_id=obs.flow_id, ts=obs.response_ts) for r in raised]
        if job.etag_follows_state and not followed and not job.revalidation_contradicted:  # earlier 304s were healthy
            findings += filter(None, [self._namer.amend(job, "status-not-modified", severity=Severity.INFO,
                                                        message=HEALTHY_NOT_MODIFIED)])
        poll = self._record(job, obs, "poll", match.matched_by, reading, analysis)
        return Update(job=job.snapshot(), poll=poll, transitions=transitions, findings=findings)

    # --- jobs found late ------------------------------------------------------------------------

    def _unclaimed(self, obs: Observation, template: Match | None = None) -> Update | None:
        """A GET that no job claims: is it the status of a job whose creation went unrecognised?
        With `template` (the URL fits a learnt status-URL shape) only a creation found counts: the
        rest is for the unknown-job rule."""
        if obs.status is None or not 200 <= obs.status < 300:
            return None
        body = obs.content()
        if not body.lstrip()[:1] == b"{" or not any(marker in body for marker in self._state_markers):
            return None  # cheap refusal: most responses are not status documents (JSON objects)
        document = parse_json_object(body)
        found = state_of(document, self._state_fields, self._vocabulary) if document is not None else None
        if found is None or found.state is State.UNKNOWN:
            return None
        if not found.state.terminal or template is not None:  # a template is evidence enough
            mutation = self.discovery.by_url(url_tokens(obs.url))
            if mutation is not None:
                return self._late(obs, mutation, "late-binding")
        if not found.state.terminal:
            mutation = self.discovery.by_reference(collect_ids(document, is_own_id_key), self._awaiting_status_url)
            if mutation is not None:
                return self._late(obs, mutation, "back-reference")
        if template is not None:
            return None
        may_start = not found.state.terminal and says_work_in_progress(found.raw)
        candidate = self.discovery.candidate(obs, found.state, may_start=may_start)
        if candidate is not None and candidate.moved_to_terminal():
            self.discovery.forget(obs)
            return self._discovered(candidate)
        return None

    def _awaiting_status_url(self, job_key: str) -> bool:
        """A job created without a status URL and not polled yet: it may adopt the URL where its
        status turns up."""
        job = self.jobs.get(job_key)
        return job is not None and job.polls == 0 and job.status_url is None

    def _late(self, obs: Observation, mutation: Mutation, how: str) -> Update | None:
        """Tie this poll to the job `mutation` started: the one it already created (whose status
        turns out to live here), or one created now, dated back to the mutation."""
        job_id = id_from_url(obs.url)
        job = self.jobs.get(mutation.job_key or "")
        earlier: list[Update] = []
        if job is not None:
            self.index.rebind(job, obs.url, job_id)
        else:
            ref = JobReference(job_id=job_id or obs.url, status_url=obs.url, source=how,
                               aliases=[job_id] if job_id and looks_like_id(job_id) else [])
            job = self._new_job(ref, mutation.obs, created_by="response")
            self._note_creation(job, mutation.obs)
            mutation.job_key = job.key
            job.last_activity = job.updated_at = mutation.obs.response_ts
            analysis = analyse(mutation.obs.response_headers, mutation.obs.status, mutation.obs.response_ts)
            earlier.append(Update(job=job.snapshot(),
                                  poll=self._record(job, mutation.obs, "create", "create", NOTHING, analysis)))
        update = self._poll(obs, Match(job, how))
        if update is not None:
            update.earlier = earlier
        return update

    def _discovered(self, candidate: Candidate) -> Update | None:
        """A job known only from its polls: tracked from the first one, and said so."""
        first = candidate.polls[0][0]
        job_id = id_from_url(first.url) or first.url
        ref = JobReference(job_id=job_id, status_url=first.url, source="discovered",
                           aliases=[job_id] if looks_like_id(job_id) else [])
        job = self._new_job(ref, first, created_by="poll")
        job.created_at = first.request_ts
        updates = [u for obs, _ in candidate.polls if (u := self._poll(obs, Match(job, "discovered"))) is not None]
        if not updates:
            return None
        raised = Raise("creation-not-seen",
                       f"job found from its polls ({len(updates)} of {job.status_url}); the request that created it "
                       "is not in the capture.", {"status_url": job.status_url, "polls": len(updates)})
        updates[0].findings.insert(0, self._finding(job, raised, flow_id=first.flow_id, ts=first.response_ts))
        last = updates[-1]
        last.earlier = updates[:-1]
        return last

    def _count_poll(self, job: Job, obs: Observation, match: Match, reading: Reading) -> None:
        """What one poll teaches about its job (after the rules judged it against the job as it was)."""
        if job.last_poll_at is not None:
            job.note_interval(obs.request_ts - job.last_poll_at)
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
        job.operation_ids.update(request_ids(obs.response_headers, self._id_names))
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
        job.note_retry_after(obs.client, None if seconds is None else (seconds, obs.response_ts))
        if seconds is not None:
            job.retry_after = seconds

    # --- findings -----------------------------------------------------------------------------

    def _finding(self, job: Job | None, raised: Raise, *, flow_id: str | None, ts: float) -> Finding:
        return self._namer.name(job, raised, flow_id=flow_id, ts=ts)

    def _unknown_job(self, unknown_id: str, obs: Observation) -> Raise:
        recent = itertools.islice(reversed(self.jobs.values()), LOOKALIKE_WINDOW)
        lookalike = closest_id(unknown_id, [j.job_id for j in recent][::-1])
        return unknown_job(unknown_id, obs, lookalike=lookalike, mentioned=self.discovery.mentioned(unknown_id))

    # --- records ------------------------------------------------------------------------------

    def _record(self, job: Job, obs: Observation, kind: str, matched_by: str, reading: Reading,
                analysis: CacheAnalysis) -> PollRecord:
        body = obs.content()  # enum members by `_value_`: the `value` property is slow, once per poll
        return PollRecord(
            job_key=job.key, flow_id=obs.flow_id, kind=kind, matched_by=matched_by,  # type: ignore[arg-type]
            method=obs.method.upper(), url=obs.url, status=obs.status, request_ts=obs.request_ts,
            response_ts=obs.response_ts, raw_state=reading.raw,
            state=reading.state._value_ if reading.state else None, state_source=reading.source,
            cache_verdict=analysis.verdict._value_, freshness_lifetime=analysis.freshness_lifetime,
            served_by=analysis.served_by._value_,
            response_cache_headers=pick(obs.response_headers, RESPONSE_CACHE_HEADERS),
            request_cache_headers=pick(obs.request_headers, REQUEST_CACHE_HEADERS),
            retry_after=parse_retry_after(obs.response_headers.get("retry-after"), obs.response_ts),
            ids=request_ids(obs.response_headers, self._id_names) | request_ids(obs.request_headers, self._id_names),
            body_sha256=hashlib.sha256(body).hexdigest() if body else None,
            client=obs.client,
            body=body.decode("utf-8", "replace") if self.config.keep_bodies and body else None,
        )
