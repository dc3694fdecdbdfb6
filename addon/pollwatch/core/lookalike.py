"""Is an unknown job id a corrupted copy of a known one? A small, capped edit distance says so."""

from __future__ import annotations

import re

_PARTS = re.compile(r"[-_.:/@]")
MAX_ID_LENGTH = 64


def closest_id(unknown: str, known: list[str]) -> str | None:
    """A known id within a small edit distance: the unknown one is probably a corrupted copy.
    Never the same id, and never a sibling (`live-ok-1` and `live-fail-1`, `e-1001` and `e-1002`
    are different ids of one family, not one id damaged)."""
    if len(unknown) > MAX_ID_LENGTH:
        return None  # the distance costs the square of the length; ids this long are not typed by hand
    best, best_distance = None, max(2, len(unknown) // 4) + 1
    for candidate in reversed(known):  # newest first: the likeliest to be the one just lost
        if abs(len(candidate) - len(unknown)) >= best_distance or candidate == unknown or siblings(candidate, unknown):
            continue
        distance = edit_distance(unknown.lower(), candidate.lower(), best_distance)
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


def edit_distance(a: str, b: str, cap: int) -> int:
    """Levenshtein distance of `a` and `b`, or at least `cap` once it cannot be smaller.

    Myers' bit-parallel algorithm (Hyyro's form): one column of the table is a pair of bit
    vectors, so each character of `b` costs a dozen integer operations whatever the length of
    `a`. The textbook table cost len(a) * len(b) Python steps per known id, which made every
    unknown-id poll stall the proxy (0.3 s for 500 ids of 64 characters)."""
    if not a or not b:
        return len(a) or len(b)
    matches: dict[str, int] = {}
    for i, char in enumerate(a):
        matches[char] = matches.get(char, 0) | (1 << i)
    full, top = (1 << len(a)) - 1, 1 << (len(a) - 1)
    plus, minus, distance = full, 0, len(a)
    for done, char in enumerate(b, 1):
        equal = matches.get(char, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        h_plus, h_minus = minus | ~(horizontal | plus), plus & horizontal
        distance += 1 if h_plus & top else -1 if h_minus & top else 0
        if distance - (len(b) - done) >= cap:
            return cap  # even matching every remaining character cannot bring it below the cap
        h_plus, h_minus = (h_plus << 1) | 1, h_minus << 1
        plus, minus = (h_minus | ~(vertical | h_plus)) & full, h_plus & vertical & full
    return distance


def siblings(a: str, b: str) -> bool:
    """Ids of one family: the same parts but for whole parts that are both words or both numbers."""
    left, right = _PARTS.split(a), _PARTS.split(b)
    if len(left) != len(right) or len(left) < 2:
        return False
    differing = [(x, y) for x, y in zip(left, right) if x != y]
    return bool(differing) and all((x.isalpha() and y.isalpha()) or (x.isdigit() and y.isdigit())
                                   for x, y in differing)
