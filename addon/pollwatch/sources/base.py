"""What every recording reader shares: the `Recording` result, the `Reader` contract the format
modules fill in, and the helpers that keep them alike (headers, bounded and decoded bodies, the
clock, one-line errors naming the file and the place).

Format modules import this one and nothing of each other; `readers` picks one by content.
About 360 lines: these helpers are what keeps six readers short and alike.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pollwatch.core.cache import parse_http_date
from pollwatch.core.observation import BODY_EXCERPT_LIMIT, Headers, Observation
from pollwatch.errors import ReadError, first_line
from pollwatch.files import check_input, read_input
from pollwatch.mitm.decoding import decode_excerpt

SYNTHETIC_SPACING = 1.0
"""Seconds between exchanges that carry no time at all (the run says so)."""
SEQUENCE_STEP = 0.001
"""Exchanges within one Date second keep their order, this far apart."""
DATE_RESOLUTION = 1.0
"""HTTP dates and recorders' timestamps are to the second: the instant lies within one after."""
RECORDING_SUFFIXES = frozenset({".flows", ".flow", ".mitm", ".dump", ".har", ".yaml", ".yml"})
JSON_RECORDING_KEYS = (b'"log"', b'"http_interactions"', b'"interactions"')
"""A .json file in a folder is read when its start names one of these (a Betamax or JSON VCR
cassette, a HAR under another name); other JSON there (expected results, package.json) is not."""


class Recording:
    """One input file: its format, its observations, and whether times were invented."""

    def __init__(self, path: Path, kind: str, observations: list[Observation], synthetic_times: bool) -> None:
        self.path = path
        self.kind = kind
        self.observations = observations
        self.synthetic_times = synthetic_times


@dataclass(frozen=True)
class Reader:
    """One recording format. `recognises(document, syntax)` looks at a document parsed as one of
    its `syntaxes` ("json", "yaml"; "flows" for mitmproxy's own, read from the file instead) and says
    whether it is this format's; `read(path, document)` turns it into a Recording or raises ReadError."""

    kind: str
    syntaxes: frozenset[str]
    recognises: Callable[[Any, str], bool]
    read: Callable[[Path, Any], Recording]


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: named files whatever their name; in folders (walked, sorted) the files whose
    suffix says recording (.flows .mitm .dump .har .yaml .yml, and .json that starts like one), so
    READMEs are passed over."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                            and (p.suffix.lower() in RECORDING_SUFFIXES or _json_recording(p)))
        elif path.exists():
            files.append(check_input(path))  # a FIFO or a device is refused here, never opened
        else:
            raise ReadError(f"{path}: no such file or folder")
    return files


def _json_recording(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        head = read_input(path, 4096)
    except ReadError:
        return True  # let read() say why it cannot be read
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") and any(k in head for k in JSON_RECORDING_KEYS)


# --- one-line errors -----------------------------------------------------------------------------

class Malformed(ValueError):
    """A part of an interaction is missing or of the wrong type; the text says which."""


ENTRY_ERRORS = (Malformed, LookupError, TypeError, ValueError, AttributeError, OverflowError)
"""What building one exchange from a damaged document can raise: a one-line ReadError each."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}" if exc.args else "missing field"
    return first_line(exc)


def each(path: Path, items: list[Any], label: str, build: Callable[[Any, int], Observation]) -> list[Observation]:
    """`build` every item in order; any failure is one ReadError naming the file and the item."""
    observations = []
    for index, item in enumerate(items):
        try:
            observations.append(build(item, index))
        except ENTRY_ERRORS as exc:
            raise ReadError(f"{path}: {label} {index} is malformed ({describe(exc)})") from exc
    return observations


def top_list(path: Path, document: Any, key: str, what: str) -> list[Any]:
    """The document's list of interactions, or a ReadError saying what is wrong with it."""
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, list):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise ReadError(f"{path}: not a {what} ({key} is {found}, not a list of interactions)")
    return value


def mapping(value: Any, what: str, *, optional: bool = False) -> dict[str, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{what} is {_kind_of(value)}, not a mapping")
    return value


def text(value: Any, what: str) -> str:
    """A scalar as text (YAML may have read a header value as a number or a boolean)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise Malformed(f"{what} is {_kind_of(value)}, not text")
    return str(value)


def status_code(value: Any, what: str) -> int | None:
    """An HTTP status as a number (0 and null: no response); a text status uses its first word."""
    if isinstance(value, str):
        value = value.strip().split(" ", 1)[0]
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Malformed(f"{what} is {_kind_of(value)}, not a status code")
    try:
        code = int(value)
    except ValueError:
        raise Malformed(f"{what} {value!r} is not a status code") from None
    return code or None


def _kind_of(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


# --- headers and bodies --------------------------------------------------------------------------

def multi_headers(value: Any, what: str) -> Headers:
    """Headers stored as a mapping of name to a list of values (or to one value)."""
    pairs: list[tuple[str, str]] = []
    for name, values in mapping(value, what, optional=True).items():
        for item in values if isinstance(values, list) else [values]:
            pairs.append((str(name), text(item, f"{what}.{name}") if item is not None else ""))
    return Headers.of(pairs)


def bounded(raw: bytes) -> tuple[bytes, bool]:
    """The body excerpt the core may look at, and whether it was cut."""
    return raw[:BODY_EXCERPT_LIMIT], len(raw) > BODY_EXCERPT_LIMIT


def body_bytes(body: Any, what: str) -> tuple[bytes, str | None]:
    """A recorded body as bytes, and, for a text field, the character set the recorder named. Takes
    a plain string, bytes (YAML !!binary), or a mapping with `string` or `base64_string`."""
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode("utf-8", "replace"), None
    body = mapping(body, what)
    if body.get("base64_string") is not None:
        try:
            return base64.b64decode(text(body["base64_string"], f"{what}.base64_string")), None
        except binascii.Error:
            raise Malformed(f"{what}.base64_string is not valid base64") from None
    string = body.get("string")
    if string is None or isinstance(string, bytes):
        return string or b"", None
    charset = body.get("encoding") if isinstance(body.get("encoding"), str) else None
    return text(string, f"{what}.string").encode("utf-8", "replace"), charset


def response_body(raw: bytes, headers: Headers, charset: str | None = None) -> tuple[bytes, bool]:
    """The bounded excerpt of a recorded body, decompressed when the recording kept the bytes as
    they came (Content-Encoding gzip/deflate/br/zstd) and they really are compressed; never
    inflated past the excerpt (pollwatch.mitm.decoding). A body that does not decompress is
    taken as already decoded."""
    coding = headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity") or not raw:
        return bounded(raw)
    decoded = decode_excerpt(raw, coding)
    if decoded is None and charset:
        try:  # compressed bytes kept in a text field read as this charset (Betamax, latin-1)
            decoded = decode_excerpt(raw.decode("utf-8").encode(charset), coding)
        except (LookupError, UnicodeError):
            decoded = None
    return decoded if decoded is not None else bounded(raw)


# --- time ----------------------------------------------------------------------------------------

LATEST_INSTANT = 4_102_444_800.0  # 2100-01-01: later recorded times are damage, not recordings
LONGEST_DURATION = 86_400.0 * 7


def instant(seconds: float, what: str) -> float:
    """An epoch time that the database, the CLI and the report can show (finite, 1970-2100)."""
    if not math.isfinite(seconds) or not 0.0 <= seconds <= LATEST_INSTANT:
        raise Malformed(f"{what} {seconds!r} is not a time between 1970 and 2100")
    return seconds


def duration(seconds: float, what: str) -> float:
    """A recorded duration: finite, not negative, at most a week."""
    if not math.isfinite(seconds) or not 0.0 <= seconds <= LONGEST_DURATION:
        raise Malformed(f"{what} {seconds!r} is not a duration (0 s to a week)")
    return seconds


def parse_time(value: Any, what: str) -> float | None:
    """A recorded instant: an HTTP/RFC 2822 date, an ISO 8601 time (no zone: UTC), a YAML
    timestamp, or epoch seconds. None when absent; Malformed when present but unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return instant((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp(), what)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return instant(float(value), what)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            when = parse_http_date(value)
            if when is None:
                raise Malformed(f"{what} {value[:40]!r} is not a date") from None
            return instant(when, what)
        return instant((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp(), what)
    raise Malformed(f"{what} is {_kind_of(value)}, not a date")


class Clock:
    """Recorded order as time. A known instant (an HTTP date or a recorder's timestamp, both to the
    second) is kept, but an exchange never ends before the previous one (SEQUENCE_STEP after it)
    and, within the second the instant allows, not before the previous end plus its own
    `duration`. An unknown instant is SYNTHETIC_SPACING after the previous exchange and marks the
    recording's times as invented. The request starts `duration` before the response, not before
    the previous response (recorded order is taken as sequential)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.synthetic = False

    def at(self, when: float | None, duration: float = 0.0) -> tuple[float, float]:
        """(request_ts, response_ts) for the next exchange; `when` is its response time if known."""
        if when is None:
            self.synthetic = True
            start = (self.last or 0.0) + SYNTHETIC_SPACING
            end = start + duration
        elif self.last is None:
            start, end = when - duration, when
        else:
            latest = when + DATE_RESOLUTION - SEQUENCE_STEP
            end = max(self.last + SEQUENCE_STEP, min(max(when, self.last + duration), latest))
            start = max(end - duration, self.last)
        self.last = end
        return start, end


def read_interactions(path: Path, document: Any, key: str, what: str, kind: str,
                      build: Callable[[Any, int, Clock], Observation]) -> Recording:
    """The list of interactions under `key`, each built in recorded order on one clock."""
    interactions = top_list(path, document, key, what)
    clock = Clock()
    observations = each(path, interactions, "interaction", lambda item, index: build(item, index, clock))
    return Recording(path, kind, observations, synthetic_times=clock.synthetic)


# --- the interaction shape Ruby VCR introduced and Betamax kept -----------------------------------

def vcr_interaction(interaction: Any, index: int, clock: Clock) -> Observation:
    """request {method, uri, headers, body}, response {status {code, message}, headers, body
    {encoding, string | base64_string}}, recorded_at: the recorder's own time, else the Date header."""
    interaction = mapping(interaction, "interaction")
    request = mapping(interaction["request"], "request")
    response = mapping(interaction["response"], "response")
    headers = multi_headers(response.get("headers"), "response.headers")
    recorded = response["status"] if "status" in response or "status_code" not in response else response["status_code"]
    if isinstance(recorded, dict):
        recorded = recorded["code"]
    raw, charset = body_bytes(response.get("body"), "response.body")
    body, truncated = response_body(raw, headers, charset)
    when = parse_time(interaction.get("recorded_at"), "recorded_at")
    request_ts, response_ts = clock.at(when if when is not None else parse_http_date(headers.get("date")))
    return Observation(
        flow_id=f"interaction-{index}", method=text(request["method"], "request.method").upper(),
        url=text(request["uri"], "request.uri"), status=status_code(recorded, "response.status"),
        request_headers=multi_headers(request.get("headers"), "request.headers"), response_headers=headers,
        body=body, body_truncated=truncated, request_ts=request_ts, response_ts=response_ts,
    )
