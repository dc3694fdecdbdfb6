"""Jobs whose creation no rule recognised at the time: found later from what the client polls.

Three ways, most certain first:
- late binding: a GET answered with a non-terminal state names, as a path segment, an id that an
  earlier mutating response returned (`POST /tasks` -> `{"data": "UPID:n1:..."}`, then
  `GET /tasks/UPID:n1:.../status`);
- a back reference: the polled document names an id of an earlier mutation (its response or its
  URL): an event `{"status": "started", "entity": {"id": 52557263}}` after `POST
  /instances/52557263/boot`;
- discovery: a URL polled two or more times whose state moves from non-terminal to terminal, with
  no creation in sight (the capture started late, or the client found the job through a search).

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
CANDIDATE_URLS = 512
CANDIDATE_POLLS = 32


@dataclass
class Mutation:
    """A POST/PUT/PATCH/DELETE answered 2xx: what it returned, and the job it started (if any)."""

    obs: Observation
    returned_ids: frozenset[str]  # ids in its response body
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
    """Recent mutations and candidate status URLs, consulted for requests no job claims."""

    def __init__(self) -> None:
        self._mutations: deque[Mutation] = deque(maxlen=RECENT_MUTATIONS)
        self._candidates: OrderedDict[str, Candidate] = OrderedDict()

    def remember_mutation(self, obs: Observation, returned_ids: list[str], url_ids: list[str],
                          job_key: str | None) -> None:
        if returned_ids or url_ids:
            self._mutations.append(Mutation(obs, frozenset(returned_ids), frozenset(url_ids), job_key))

    def by_url(self, tokens: list[str]) -> Mutation | None:
        """The newest mutation without a job that returned an id this URL names."""
        wanted = set(tokens)
        return next((m for m in reversed(self._mutations) if m.job_key is None and m.returned_ids & wanted), None)

    def by_reference(self, ids: list[str], adoptable: Callable[[str], bool]) -> Mutation | None:
        """The newest mutation that returned or addressed an id the polled document names, and
        has no job yet or only one that is still waiting for its first poll (`adoptable`)."""
        wanted = set(ids)
        for m in reversed(self._mutations):
            if (m.returned_ids | m.url_ids) & wanted and (m.job_key is None or adoptable(m.job_key)):
                return m
        return None

    def mentions(self, identifier: str) -> Mutation | None:
        """The newest mutation that returned `identifier`."""
        return next((m for m in reversed(self._mutations) if identifier in m.returned_ids), None)

    def mentioned(self, identifier: str) -> bool:
        """Whether an earlier exchange named `identifier`: a mutation's response or URL, or a URL
        polled without a job."""
        return any(identifier in m.returned_ids or identifier in m.url_ids for m in self._mutations) or any(
            identifier in key for key in self._candidates)

    def candidate(self, obs: Observation, state: State) -> Candidate:
        """Add a poll of an unclaimed URL; the URL's candidate (the oldest URLs are forgotten)."""
        key = url_key(obs.url)
        found = self._candidates.pop(key, None) or Candidate()
        found.polls = [*found.polls[-(CANDIDATE_POLLS - 1):], (obs, state)]
        self._candidates[key] = found
        if len(self._candidates) > CANDIDATE_URLS:
            self._candidates.popitem(last=False)
        return found

    def forget(self, obs: Observation) -> None:
        self._candidates.pop(url_key(obs.url), None)
