"""Finding a job again: the lookups that tie a poll to a job (exact status URL, path, ids in the
URL, learnt status-URL templates), and the bound on how many jobs are remembered."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import NamedTuple

from pollwatch.core.documents import looks_like_id
from pollwatch.core.job import Job
from pollwatch.core.observation import Observation
from pollwatch.core.references import JobReference, Template
from pollwatch.core.urls import origin_of, path_key, path_segments, split, url_key, url_tokens

POLL_METHODS = frozenset({"GET", "HEAD"})
MIN_ID_LENGTH = 3      # shorter ids ("7", "42") appear in too many unrelated URLs to match on
MAX_TEMPLATES = 256    # learnt status-URL shapes; per-user URL families must not grow it forever


class Match(NamedTuple):
    """How a request was tied to a job; `job` None means it fits a template for `unknown_id`."""

    job: Job | None
    matched_by: str
    unknown_id: str | None = None


class JobIndex:
    """Every remembered job, in creation order, with the lookups polls are matched through."""

    def __init__(self, templates: list[Template], max_jobs: int) -> None:
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.active: dict[str, Job] = {}  # jobs the lifecycle rules still have to judge
        self.templates = list(templates)
        self._learnt: set[tuple[str, ...]] = {t.segments for t in templates}
        self._max_jobs = max_jobs
        self.added = 0
        """Jobs ever added: `jobs` holds the latest `max_jobs` of them."""
        self._by_status_key: dict[str, Job] = {}
        self._by_path: dict[str, Job | None] = {}  # None: several jobs share the path
        self._by_id: dict[str, list[Job]] = {}
        self._by_result: dict[str, Job] = {}  # result ids a task links to: polling the result polls the task
        self._off_host: dict[str, Job] = {}  # status URLs moved onto the host the client called

    def match_poll(self, obs: Observation) -> Match | None:
        """The job a GET/HEAD polls, most exact lookup first; None when it names no job."""
        if obs.method.upper() not in POLL_METHODS:
            return None
        job = self._by_status_key.get(url_key(obs.url))
        if job is not None:
            return Match(job, "canonical")
        job = self._by_path.get(path_key(obs.url))
        if job is not None:
            return Match(job, "same-path")
        job = self._off_host.get(url_key(obs.url))
        if job is not None:
            return Match(job, "off-host")
        tokens = url_tokens(obs.url)
        segments = path_segments(obs.url)
        job = self._by_result.get(segments[-1]) if segments else None
        if job is not None and job.host == origin_of(obs.url):  # the result itself, on the job's host
            return Match(job, "result")
        candidates = [j for token in tokens for j in self._by_id.get(token, ())]
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
        for template in self.templates:
            unknown = template.match(obs.url)
            if unknown is not None:
                return Match(None, "template", unknown)
        return None

    def jobs_named_by(self, url: str) -> list[Job]:
        """Jobs this URL is about: the one whose status URL (or path) it is, and those whose id it
        holds as a whole segment on their host (`POST /tasks/t-101/cancel`)."""
        found = [j for j in (self._by_status_key.get(url_key(url)), self._by_path.get(path_key(url))) if j]
        origin = origin_of(url)
        found += [j for token in url_tokens(url) for j in self._by_id.get(token, ()) if j.host == origin]
        return found

    def add(self, job: Job, ref: JobReference, *, learn: bool = False) -> None:
        """Remember a new job under its status URL, its ids and, when `learn` (a creation that
        announced itself as asynchronous), its URL's shape as a template."""
        self.jobs[job.key] = job
        self.added += 1
        if ref.status_url:
            self.index_status_url(job, ref.status_url)
        if learn and ref.status_url and ref.job_id:
            template = Template.learn(ref.status_url, ref.job_id)
            if template is not None and template.segments not in self._learnt and len(self._learnt) < MAX_TEMPLATES:
                self._learnt.add(template.segments)
                self.templates.append(template)
        for alias in ref.aliases:
            if len(alias) >= MIN_ID_LENGTH:
                self._by_id.setdefault(alias, []).append(job)
        job.result_ids = list(ref.result_ids)
        for result_id in job.result_ids:
            self._by_result[result_id] = job
        if ref.off_host_url:
            job.off_host_key = url_key(ref.off_host_url)
            self._off_host[job.off_host_key] = job
        self.active[job.key] = job
        self._evict()

    def index_status_url(self, job: Job, url: str) -> None:
        key, path = url_key(url), path_key(url)
        self._by_status_key[key] = job
        # A path shared by several jobs (/status?job=a1, /status?job=b2) names none of them.
        self._by_path[path] = job if self._by_path.get(path, job) is job else None
        job.index_keys.append((key, path))

    def rebind(self, job: Job, url: str, job_id: str | None) -> None:
        """The job's status lives at `url` after all (found by what the URL's document names): it
        is indexed there, and the ids it was created with no longer lead to it (they name the
        resource it acts on, whose own URL is not its status)."""
        self._drop_aliases(job)
        job.aliases = [job_id] if job_id and len(job_id) >= MIN_ID_LENGTH and looks_like_id(job_id) else []
        for alias in job.aliases:
            self._by_id.setdefault(alias, []).append(job)
        self._unindex_status_urls(job)
        job.status_url = url
        self.index_status_url(job, url)

    def _unindex_status_urls(self, job: Job) -> None:
        """Every status URL the job was ever indexed under (it moves on first polls and rebinds)."""
        for key, path in job.index_keys:
            if self._by_status_key.get(key) is job:
                del self._by_status_key[key]
            if self._by_path.get(path) is job:
                del self._by_path[path]
        job.index_keys.clear()

    def _drop_aliases(self, job: Job) -> None:
        for alias in job.aliases:
            remaining = [j for j in self._by_id.get(alias, ()) if j is not job]
            if remaining:
                self._by_id[alias] = remaining
            else:
                self._by_id.pop(alias, None)

    def _evict(self) -> None:
        """Bound memory on long sessions: forget the oldest jobs, finished ones first."""
        excess = len(self.jobs) - self._max_jobs
        if excess <= 0:
            return
        excess += self._max_jobs // 10  # evict a tenth at once: the scan is not paid per job
        done = [j for j in self.jobs.values() if j.finished or j.abandoned][:excess]
        chosen = {j.key for j in done}
        oldest = itertools.islice((j for j in self.jobs.values() if j.key not in chosen), excess - len(done))
        for job in [*done, *oldest]:
            self._forget(job)

    def _forget(self, job: Job) -> None:
        del self.jobs[job.key]
        self.active.pop(job.key, None)
        self._unindex_status_urls(job)
        for lookup, keys in ((self._by_result, job.result_ids), (self._off_host, [job.off_host_key])):
            for key in keys:
                if key is not None and lookup.get(key) is job:
                    del lookup[key]
        self._drop_aliases(job)
