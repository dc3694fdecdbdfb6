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
    """Levenshtein distance of `a` and `b`, or `cap` as soon as it cannot be smaller."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) >= cap:
            return cap
        previous = current
    return previous[-1]


def siblings(a: str, b: str) -> bool:
    """Ids of one family: the same parts but for whole parts that are both words or both numbers."""
    left, right = _PARTS.split(a), _PARTS.split(b)
    if len(left) != len(right) or len(left) < 2:
        return False
    differing = [(x, y) for x, y in zip(left, right) if x != y]
    return bool(differing) and all((x.isalpha() and y.isalpha()) or (x.isdigit() and y.isdigit())
                                   for x, y in differing)
