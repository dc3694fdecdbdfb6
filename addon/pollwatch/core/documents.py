"""Reading JSON response documents the way async APIs write them: the object a response is about
may be the document itself or wrapped (`{"volume": {...}}`, `{"data": {...}}`), ids sit in fields
with many spellings (`id`, `jobId`, `task-id`, `uuid`), and links in nested objects or lists."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

MAX_IDS = 64          # id values collected from one document
MAX_DEPTH = 4         # how deep ids are looked for
MIN_ID_LENGTH = 3

_ID_KEY = re.compile(r"(?i)^(id|uuid|guid|upid|key)$|[-_.](id|uuid)$|[a-z0-9](Id|ID|Uuid)$")
_VERSION = re.compile(r"(?i)^v\d+([a-z]+\d*)?$")
_PLAIN_WORD = re.compile(r"^[A-Za-z]+$")


def parse_json_object(body: bytes) -> Mapping[str, Any] | None:
    """The body as a JSON object, or None when it is empty, not JSON or not an object."""
    text = body.lstrip()
    if not text.startswith(b"{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def lookup(document: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path (`properties.provisioningState`), or None."""
    if "." not in path:  # most paths are one key
        return document.get(path) if type(document) is dict or isinstance(document, Mapping) else None
    value: Any = document
    for key in path.split("."):
        if type(value) is not dict and not isinstance(value, Mapping):  # JSON gives dicts; the ABC check is slow
            return None
        value = value.get(key)
    return value


def subject(document: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object a document wraps, when it wraps one: its only member (`{"volume": {...}}`) or its
    `data` object. None when the document is the subject itself."""
    if len(document) == 1:
        (value,) = document.values()
        return value if isinstance(value, Mapping) else None
    data = document.get("data")
    return data if isinstance(data, Mapping) else None


def layers(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The document, then the object it wraps (if any): where a state or a reference is looked for."""
    yield document
    inner = subject(document)
    if inner is not None:
        yield inner


def is_id_key(key: str) -> bool:
    """`id`, `jobId`, `job_id`, `task-id`, `uuid`...: a field that names something."""
    return bool(_ID_KEY.search(key))


JOB_NOUNS = frozenset({"task", "job", "operation", "op", "run", "request", "execution", "process", "workflow",
                       "build", "deployment", "prediction", "upid", "uuid", "guid"})
_WORDS = re.compile(r"[-_.]|(?<=[a-z0-9])(?=[A-Z])")


def names_the_job(key: str) -> bool:
    """An id field that names the job itself (`task-id`, `runId`, `uuid`), not something it
    touches (`user_id`, `volume_id`)."""
    if not is_id_key(key):
        return False
    words = [w for w in _WORDS.split(key) if w]
    return bool(words) and words[0].lower() in JOB_NOUNS


def is_own_id_key(key: str) -> bool:
    """A field holding the id of the object it sits in (`id`, `uuid`) or of a job (`taskId`):
    what a status document is about, not what it refers to (`user_id`)."""
    return key in ("id", "uuid", "guid", "ID", "Id") or names_the_job(key)


def looks_like_id(value: str) -> bool:
    """A value that could name one job or resource: no spaces, not a version (`v4beta`) or a plain
    word (`instances`), and long enough not to appear everywhere by chance."""
    if len(value) < MIN_ID_LENGTH or len(value) > 512 or any(c.isspace() for c in value):
        return False
    if _VERSION.match(value) or _PLAIN_WORD.match(value):
        return False
    return any(c.isdigit() for c in value) or any(c in value for c in ":@") or len(value) >= 16


def scalar_id(value: Any) -> str | None:
    """An id-field value as text (ints count; booleans and empty strings do not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def id_values(document: Any, depth: int = 0, key_test: Callable[[str], bool] = is_id_key) -> Iterator[str]:
    """Values of id fields (as `key_test` says) anywhere in the document (bounded depth),
    id-looking only."""
    if depth > MAX_DEPTH:
        return
    items: Sequence[Any] = ()
    if isinstance(document, Mapping):
        for key, value in document.items():
            if isinstance(key, str) and key_test(key):
                text = scalar_id(value)
                if text is not None and looks_like_id(text):
                    yield text
        items = list(document.values())
    elif isinstance(document, list):
        items = document[:50]
    for item in items:
        if isinstance(item, Mapping | list):
            yield from id_values(item, depth + 1, key_test)


def collect_ids(document: Any, key_test: Callable[[str], bool] = is_id_key) -> list[str]:
    """Distinct id values of a document, at most MAX_IDS, in document order."""
    out: dict[str, None] = {}
    for value in id_values(document, 0, key_test):
        out.setdefault(value)
        if len(out) >= MAX_IDS:
            break
    return list(out)


def link(document: Mapping[str, Any], path: str) -> str | None:
    """A link at `path`: a string, an object's `href`, or in a list of `{rel, href}` the entry
    whose rel is the path's last word (`links.self` finds `{"rel": "self", "href": ...}`)."""
    value = lookup(document, path)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, Mapping):
        href = value.get("href")
        return href.strip() if isinstance(href, str) and href.strip() else None
    head, _, rel = path.rpartition(".")
    if head:
        listed = lookup(document, head)
        if isinstance(listed, list):
            for entry in listed[:20]:
                if isinstance(entry, Mapping) and entry.get("rel") == rel and isinstance(entry.get("href"), str):
                    return entry["href"].strip() or None
    return None
