"""The per-job state machine: ties polls to the job that created them and applies the rules.

`Tracker.observe` is the single entry point for live and offline traffic alike; `tick` and
`finish` run the time-based rules (polling-abandoned, stuck-non-terminal).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from .cache import REQUEST_CACHE_HEADERS, RESPONSE_CACHE_HEADERS, analyse, parse_retry_after, pick
from .config import Config
from .detection import (
    JobReference, Template, find_reference, split, is_job_creation, origin_of, path_key, request_ids, self_reference,
    url_key, url_tokens,
)
from .findings import CATALOGUE, Finding
from .observation import Observation
from .records import JobSnapshot, PollRecord, Transition, Update
from .rules import CREATION_RULES, POLL_RULES, PollFacts, Raise, Reading, polling_abandoned, stuck_non_terminal
from .states import State, parse_json_object, read_done_flag, read_state_word

POLL_METHODS = frozenset({"GET", "HEAD"})
RECENT_POLLS = 16
MIN_ID_LENGTH = 3      # shorter ids ("7", "42") appear in too many unrelated URLs to match on
MAX_TEMPLATES = 256    # learnt status-URL shapes; per-user URL families must not grow it forever
LOOKALIKE_WINDOW = 500  # recent jobs an unknown id is compared with
MAX_ETAGS = 64         # ETags remembered per job


class RecentPoll(NamedTuple):
    request_ts: float
    response_ts: float
    state: State


@dataclass
class Job:
    """Everything pollwatch remembers about one job while traffic flows."""

    key: str
    job_id: str
    aliases: list[str]
    status_url: str | None
    host: str
    created_at: float
    created_by: str
    reference_source: str
    create_method: str | None = None
    create_url: str | None = None
    create_status: int | None = None
    create_flow_id: str | None = None
    monitor: bool = False  # a Location-style monitor: 200/204 without a state field means done
    operation_ids: dict[str, str] = field(default_factory=dict)
    states: list[State] = field(default_factory=list)
    last_state: State | None = None
    max_state: State | None = None
    state_since: float | None = None
    terminal_state: State | None = None
    terminal_at: float | None = None
    terminal_seen_by: dict[str | None, float] = field(default_factory=dict)  # client -> when it got a terminal state
    ended: str | None = None  # "missing" when the server lost the job
    abandoned: bool = False
    polls: int = 0
    polls_after_terminal: int = 0
    last_poll_at: float | None = None
    last_activity: float = 0.0
    retry_after: float | None = None  # the latest Retry-After any client got: the server's rhythm
    retry_after_for: dict[str | None, tuple[float, float]] = field(default_factory=dict)  # client -> (s, when)
    etags: dict[str, State] = field(default_factory=dict)
    recent: deque[RecentPoll] = field(default_factory=lambda: deque(maxlen=RECENT_POLLS))
    intervals: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    counts: dict[str, Finding] = field(default_factory=dict)
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.terminal_state is not None or self.ended is not None

    def expected_interval(self) -> float | None:
        """How often this client polls: median recent interval, else the server's Retry-After."""
        if len(self.intervals) >= 2:
            return statistics.median(self.intervals)
        return self.retry_after

    def overtaking_poll(self, obs: Observation, state: State) -> RecentPoll | None:
        """A poll sent after this one but answered before it, with a later state."""
        # Any client: a browser polling with setInterval spreads its polls over several
        # connections, and it is one client all the same.
        for poll in self.recent:
            if (poll.request_ts > obs.request_ts and poll.response_ts <= obs.response_ts
                    and (poll.state.rank or 0) > (state.rank or 0)):
                return poll
        return None

    def deliver(self, state: State, ts: float) -> bool:
        """Record a state reaching the client; True if it differs from the previous one."""
        changed = state is not self.last_state
        if changed:
            self.states.append(state)
            self.state_since = ts
        self.last_state = state
        if state.rank is not None and (self.max_state is None or state.rank > (self.max_state.rank or 0)):
            self.max_state = state
        if state.terminal and (self.terminal_state is not state):
            self.terminal_state, self.terminal_at = state, ts
        return changed

    def snapshot(self) -> JobSnapshot:
        return JobSnapshot(
            key=self.key, job_id=self.job_id, status_url=self.status_url, host=self.host,
            created_at=self.created_at, created_by=self.created_by,  # type: ignore[arg-type]
            create_method=self.create_method, create_url=self.create_url, create_status=self.create_status,
            create_flow_id=self.create_flow_id, reference_source=self.reference_source,
            operation_ids=dict(self.operation_ids), states=[s.value for s in self.states],
            last_state=self.last_state.value if self.last_state else None,
            terminal_state=self.terminal_state.value if self.terminal_state else None,
            terminal_at=self.terminal_at, polls=self.polls, polls_after_terminal=self.polls_after_terminal,
            last_poll_at=self.last_poll_at, updated_at=self.updated_at,
        )


class Match(NamedTuple):
    job: Job | None
    matched_by: str
    unknown_id: str | None = None


class Tracker:
    """Feeds observations through job recognition, state reading and the rules."""

    def __init__(self, config: Config | None = None, *, key_prefix: str = "",
                 serial: Iterator[int] | None = None) -> None:
        """`serial` numbers jobs; pass the previous tracker's to keep keys unique in a session."""
        self.config = config or Config()
        self._vocabulary = self.config.vocabulary()
        self._state_fields = self.config.all_state_fields()
        self._templates: list[Template] = [Template.parse(t) for t in self.config.templates]
        self._learnt: set[tuple[str, ...]] = {t.segments for t in self._templates}
        self._key_prefix = key_prefix
        self._serial = serial or itertools.count(1)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._active: dict[str, Job] = {}  # jobs the lifecycle rules still have to judge
        self._by_status_key: dict[str, Job] = {}
        self._by_path: dict[str, Job | None] = {}  # None: several jobs share the path
        self._by_id: dict[str, list[Job]] = {}
        self.clock = 0.0  # the latest timestamp seen: "now" for recorded traffic

    # --- entry points ------------------------------------------------------------------------

    def observe(self, obs: Observation) -> Update | None:
        """Process one exchange; None when it is not job traffic."""
        self.clock = max(self.clock, obs.response_ts, obs.request_ts)
        match = self._match_poll(obs)
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
        for job in self._active.values():
            if job.finished or job.abandoned:
                continue
            stuck = stuck_non_terminal(job, now, self.config)
            if stuck is not None and self._scope_key(job, stuck) not in job.counts:
                findings.append(self._finding(job, stuck, flow_id=None, ts=now))
            abandoned = polling_abandoned(job, now, self.config, capture_ended=capture_ended)
            if abandoned is not None:
                findings.append(self._finding(job, abandoned, flow_id=None, ts=now))
                job.abandoned = True
        self._active = {k: j for k, j in self._active.items() if not (j.finished or j.abandoned)}
        return findings

    # --- recognising ------------------------------------------------------------------------

    def _match_poll(self, obs: Observation) -> Match | None:
        if obs.method.upper() not in POLL_METHODS:
            return None
        job = self._by_status_key.get(url_key(obs.url))
        if job is not None:
            return Match(job, "canonical")
        job = self._by_path.get(path_key(obs.url))
        if job is not None:
            return Match(job, "same-path")
        candidates = [j for token in url_tokens(obs.url) for j in self._by_id.get(token, ())]
        if candidates:
            origin = origin_of(obs.url)
            same_host = [j for j in candidates if j.host == origin]
            if same_host:
                job = same_host[-1]
                return Match(job, "first-poll" if job.status_url is None else "job-id")
            # On another host only the job's own status path counts: the same id in some other
            # URL there (an image, a page number) says nothing about this job.
            path = split(obs.url).path
            elsewhere = [j for j in candidates if j.status_url and split(j.status_url).path == path]
            if elsewhere:
                return Match(elsewhere[-1], "job-id")
        for template in self._templates:
            unknown = template.match(obs.url)
            if unknown is not None:
                return Match(None, "template", unknown)
        return None

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
        reading = self._read_state(obs, None, document)  # only the body speaks for a creating response
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
        host = origin_of(ref.status_url or obs.url)
        job = Job(key=f"{self._key_prefix}{next(self._serial)}", job_id=ref.job_id, aliases=ref.aliases,
                  status_url=ref.status_url, host=host, created_at=obs.response_ts, created_by=created_by,
                  reference_source=ref.source, operation_ids=request_ids(obs.response_headers, self.config.id_headers))
        self.jobs[job.key] = job
        if ref.status_url:
            self._index_status_url(job, ref.status_url)
            template = Template.learn(ref.status_url, ref.job_id)
            if template is not None and template.segments not in self._learnt and len(self._learnt) < MAX_TEMPLATES:
                self._learnt.add(template.segments)
                self._templates.append(template)
        for alias in ref.aliases:
            if len(alias) >= MIN_ID_LENGTH:
                self._by_id.setdefault(alias, []).append(job)
        self._active[job.key] = job
        self._evict()
        return job

    def _index_status_url(self, job: Job, url: str) -> None:
        self._by_status_key[url_key(url)] = job
        path = path_key(url)
        # A path shared by several jobs (/status?job=a1, /status?job=b2) names none of them.
        self._by_path[path] = job if self._by_path.get(path, job) is job else None

    def _evict(self) -> None:
        """Bound memory on long sessions: forget the oldest jobs, finished ones first."""
        excess = len(self.jobs) - self.config.max_jobs
        if excess <= 0:
            return
        excess += self.config.max_jobs // 10  # evict a tenth at once: the scan is not paid per job
        done = [j for j in self.jobs.values() if j.finished or j.abandoned][:excess]
        chosen = {j.key for j in done}
        oldest = itertools.islice((j for j in self.jobs.values() if j.key not in chosen), excess - len(done))
        for job in [*done, *oldest]:
            del self.jobs[job.key]
            self._active.pop(job.key, None)
            if job.status_url:
                for index, key in ((self._by_status_key, url_key(job.status_url)),
                                   (self._by_path, path_key(job.status_url))):
                    if index.get(key) is job:
                        del index[key]
            for alias in job.aliases:
                remaining = [j for j in self._by_id.get(alias, ()) if j is not job]
                if remaining:
                    self._by_id[alias] = remaining
                else:
                    self._by_id.pop(alias, None)

    # --- polls --------------------------------------------------------------------------------

    def _poll(self, obs: Observation, match: Match) -> Update | None:
        document = parse_json_object(obs.content())
        job = match.job
        reading = self._read_state(obs, job, document)
        if match.matched_by != "canonical" and not _looks_like_status(obs.status, reading):
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
            self._index_status_url(job, obs.url)

        facts = PollFacts(obs=obs, analysis=analysis, reading=reading, matched_by=match.matched_by, config=self.config)
        raised += [r for rule in POLL_RULES if (r := rule(job, facts)) is not None]

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
            job.etags.setdefault(etag, reading.state)
            if len(job.etags) > MAX_ETAGS:
                del job.etags[next(iter(job.etags))]

        transitions = self._deliver(job, reading, obs)
        if not (job.finished or job.abandoned):
            self._active[job.key] = job
        if reading.state is not None and reading.state.terminal:
            job.terminal_seen_by.setdefault(obs.client, obs.response_ts)
        if reading.state is not None and reading.state.rank is not None:
            job.recent.append(RecentPoll(obs.request_ts, obs.response_ts, reading.state))
        findings = [self._finding(job, r, flow_id=obs.flow_id, ts=obs.response_ts) for r in raised]
        poll = self._record(job, obs, "poll", match.matched_by, reading, analysis)
        return Update(job=job.snapshot(), poll=poll, transitions=transitions, findings=findings)

    def _read_state(self, obs: Observation, job: Job | None, document: object) -> Reading:
        """Which state this response shows the client (RFC 9110 + common API conventions)."""
        status = obs.status
        if status is None:
            return Reading(None, None, None)
        if status == 304:
            stored = _stored_state(obs, job)
            return Reading("304 Not Modified", stored, "stored-copy")
        if status == 410:
            return Reading("410 Gone", State.EXPIRED, "status-code")
        if status >= 400:
            return Reading(None, None, None)  # an error body describes the request, not the job
        if isinstance(document, dict):
            found = read_state_word(document, self._state_fields)
            if found is not None:
                path, word = found
                return Reading(word, self._vocabulary.normalise(word), path)
            done = read_done_flag(document)
            if done is not None:
                return Reading(done[0], done[1], "done")
        if job is not None and job.status_url is not None and url_key(obs.url) == url_key(job.status_url):
            if status == 202:
                return Reading("202 Accepted", State.RUNNING, "status-code")
            if status == 303:
                return Reading("303 See Other", State.SUCCEEDED, "status-code")
            if status in (200, 204) and job.monitor:
                return Reading(f"{status} on monitor", State.SUCCEEDED, "status-code")
        return Reading(None, None, None)

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
        job_key = job.key if job else None
        key = self._scope_key(job, raised, flow_id, ts)
        earlier = job.counts.get(key) if job else None
        count = earlier.count + 1 if earlier else 1
        finding = Finding(
            key=key, code=raised.code, severity=kind.severity, job_key=job_key,
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
        lookalike = _closest_id(unknown_id, [j.job_id for j in recent][::-1])
        if lookalike is not None:
            why = f"it looks like a mangled copy of job {lookalike}: the client lost or corrupted its job id."
        else:
            why = "it resembles no job created during this capture: the capture probably started after the job was created."
        return Raise("unknown-job", f"poll for id {unknown_id!r}, which no 202 returned; {why}",
                     {"id": unknown_id, "url": obs.url, "lookalike": lookalike,
                      "likely": "mangled-id" if lookalike else "capture-started-late"}, scope=None)

    # --- records ------------------------------------------------------------------------------

    def _record(self, job: Job, obs: Observation, kind: str, matched_by: str, reading: Reading, analysis) -> PollRecord:
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


def _looks_like_status(status: int | None, reading: Reading) -> bool:
    return reading.state is not None or status in (202, 304, 404, 410)


def _stored_state(obs: Observation, job: Job | None) -> State | None:
    """For a 304: the state of the copy the client revalidated (by ETag), else the last one seen."""
    if job is None:
        return None
    for tag in (obs.request_headers.get("if-none-match") or "").split(","):
        state = job.etags.get(tag.strip())
        if state is not None:
            return state
    return job.last_state


def _closest_id(unknown: str, known: list[str]) -> str | None:
    """A known id within a small edit distance: the unknown one is probably a corrupted copy."""
    best, best_distance = None, max(2, len(unknown) // 4) + 1
    for candidate in reversed(known):  # newest first: the likeliest to be the one just lost
        if abs(len(candidate) - len(unknown)) >= best_distance:
            continue
        distance = _edit_distance(unknown.lower(), candidate.lower(), best_distance)
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


def _edit_distance(a: str, b: str, cap: int) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) >= cap:
            return cap
        previous = current
    return previous[-1]
