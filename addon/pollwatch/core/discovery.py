"""Jobs whose creation no rule recognised at the time: found later from what the client polls.

Three ways, most certain first:
- late binding: a GET answered with a non-terminal state names, as a path segment, an id that an
  earlier mutating response returned (`POST /tasks` -> `{"data": "UPID:n1:..."}`, then
  `GET /tasks/UPID:n1:.../status`);
- a back reference: the polled document names, in an id field of its own (`id`, `taskId`, not
  `user_id`), an id of an earlier mutation (its response or its URL): an event
  `{"status": "started", "entity": {"id": 52557263}}` after `POST /instances/52557263/boot`;
- discovery: a URL polled two or more times whose state moves from a work-in-progress word
  (`started`, `processing`, not a resource's `pending`) to terminal, with no creation in sight
  (the capture started late, or the client found the job through a search).

Memory is bounded: recent mutations and candidate URLs are kept in fixed-size windows.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pollwatch.core.observation import Observation
from pollwatch.core.states import State
from pollwatch.core.urls import url_key

RECENT_MUTATIONS = 256
CANDIDATE_URLS = 256
CANDIDATE_POLLS = 16
CANDIDATE_BODY_LIMIT = 16 * 1024  # a status document is small; larger bodies are not kept for later


@dataclass
class Mutation:
    """A POST/PUT/PATCH/DELETE answered 2xx: what it returned, and the job it started (if any)."""

    obs: Observation
    returned_ids: frozenset[str]  # ids its response gave for what it created
    url_ids: frozenset[str]  # ids in its request URL
    job_key: str | None = None


@dataclass
class Candidate:
    """Polls of one URL that belongs to no job yet, with the states they showed."""

    polls: list[tuple[Observation, State]] = field(default_factory=list)

    def moved_to_terminal(self) -> bool:
        """Two or more polls, the last terminal and an earlier one not."""
        states = [state for _, state in self.polls]
        return len(states) >= 2 and states[-1].terminal and any(not s.terminal for s in states[:-1])


class Discovery:
    """Recent mutations (indexed by the ids they returned or addressed) and candidate status
    URLs, consulted for requests no job claims. Lookups cost one dictionary probe per id."""

    def __init__(self) -> None:
        self._mutations: deque[Mutation] = deque()
        self._by_returned: dict[str, Mutation] = {}  # id -> newest mutation that returned it
        self._by_any: dict[str, Mutation] = {}  # id -> newest mutation that returned or addressed it
        self._candidates: OrderedDict[str, Candidate] = OrderedDict()

    def remember_mutation(self, obs: Observation, returned_ids: list[str], url_ids: list[str],
                          job_key: str | None) -> None:
        if not (returned_ids or url_ids):
            return
        mutation = Mutation(obs.loaded(), frozenset(returned_ids), frozenset(url_ids), job_key)  # kept: not its flow
        self._mutations.append(mutation)
        for identifier in mutation.returned_ids:
            self._by_returned[identifier] = mutation
        for identifier in mutation.returned_ids | mutation.url_ids:
            self._by_any[identifier] = mutation
        if len(self._mutations) > RECENT_MUTATIONS:
            self._drop(self._mutations.popleft())

    def _drop(self, old: Mutation) -> None:
        for index in (self._by_returned, self._by_any):
            for identifier in old.returned_ids | old.url_ids:
                if index.get(identifier) is old:
                    del index[identifier]

    def by_url(self, tokens: list[str]) -> Mutation | None:
        """The newest mutation without a job that returned an id this URL names."""
        found = [m for t in tokens if (m := self._by_returned.get(t)) is not None and m.job_key is None]
        return max(found, key=lambda m: m.obs.response_ts, default=None)

    def by_reference(self, ids: list[str], adoptable: Callable[[str], bool]) -> Mutation | None:
        """The newest mutation that returned or addressed an id the polled document names, and
        has no job yet or only one that is still waiting for its status URL (`adoptable`)."""
        found = [m for i in ids if (m := self._by_any.get(i)) is not None
                 and (m.job_key is None or adoptable(m.job_key))]
        return max(found, key=lambda m: m.obs.response_ts, default=None)

    def mentioned(self, identifier: str) -> bool:
        """Whether an earlier exchange named `identifier`: a mutation's response or URL, or a URL
        polled without a job."""
        return identifier in self._by_any or any(identifier in key for key in self._candidates)

    def candidate(self, obs: Observation, state: State, *, may_start: bool) -> Candidate | None:
        """Add a poll of an unclaimed URL to its candidate; a new candidate only where `may_start`
        (a state that says work is in progress). The oldest URLs are forgotten."""
        key = url_key(obs.url)
        found = self._candidates.pop(key, None)
        if found is None:
            if not may_start or len(obs.body) > CANDIDATE_BODY_LIMIT:
                return None
            found = Candidate()
        found.polls = [*found.polls[-(CANDIDATE_POLLS - 1):], (obs.loaded(), state)]  # kept: not its flow
        self._candidates[key] = found
        if len(self._candidates) > CANDIDATE_URLS:
            self._candidates.popitem(last=False)
        return found

    def forget(self, obs: Observation) -> None:
        self._candidates.pop(url_key(obs.url), None)
