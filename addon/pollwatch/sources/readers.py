"""Reading recorded traffic into Observations: mitmproxy flow files, HAR, VCR.py cassettes.

Each reader yields observations in recorded order, with recorded timestamps where the format
has them. A file that cannot be read raises ReadError with a one-line message naming it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pollwatch.errors import ReadError, first_line
from pollwatch.core.cache import parse_http_date
from pollwatch.core.observation import BODY_EXCERPT_LIMIT, Headers, Observation

SYNTHETIC_SPACING = 1.0
"""Seconds between exchanges that carry no time at all (the run says so)."""
SEQUENCE_STEP = 0.001
"""Exchanges within one Date second keep their order, this far apart."""



class Recording:
    """One input file: its format, its observations, and whether times were invented."""

    def __init__(self, path: Path, kind: str, observations: list[Observation], synthetic_times: bool) -> None:
        self.path = path
        self.kind = kind
        self.observations = observations
        self.synthetic_times = synthetic_times


RECORDING_SUFFIXES = frozenset({".flows", ".flow", ".mitm", ".dump", ".har", ".yaml", ".yml"})


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files to read: named files whatever their name; in folders (walked, sorted) the files
    whose suffix says recording (.flows .mitm .dump .har .yaml .yml), so READMEs are passed over."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                            and p.suffix.lower() in RECORDING_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise ReadError(f"{path}: no such file or folder")
    return files


def read(path: Path) -> Recording:
    """Read one recording, guessing its format from its content."""
    try:
        head = path.open("rb").read(512)
    except OSError as exc:
        raise ReadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    text = head.lstrip()
    if text.startswith(b"{"):
        return read_har(path)
    if text.startswith((b"interactions:", b"---", b"version:")) or b"interactions:" in head:
        return read_cassette(path)
    return read_flows(path)


# --- mitmproxy flow files ------------------------------------------------------------------

def read_flows(path: Path) -> Recording:
    from mitmproxy import exceptions, http, io

    from pollwatch.mitm.flows import observation_from_flow

    observations = []
    with path.open("rb") as f:
        reader = io.FlowReader(f)
        try:
            for flow in reader.stream():
                if isinstance(flow, http.HTTPFlow):
                    obs = observation_from_flow(flow)
                    obs.content()  # read the body now: the flow object is not kept
                    observations.append(obs)
        except exceptions.FlowReadException as exc:
            raise ReadError(f"{path}: not a readable mitmproxy flow file at byte {f.tell()} ({exc})") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ReadError(f"{path}: corrupt mitmproxy flow file at byte {f.tell()} ({exc})") from exc
    if not observations and path.stat().st_size:
        raise ReadError(f"{path}: no HTTP flows in it (unknown format?)")
    return Recording(path, "flows", observations, synthetic_times=False)


# --- HAR ---------------------------------------------------------------------------------------

def read_har(path: Path) -> Recording:
    try:
        document = json.loads(path.read_bytes())
        entries = document["log"]["entries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"{path}: not a HAR file ({first_line(exc)})") from exc
    observations = []
    for index, entry in enumerate(entries):
        try:
            observations.append(_har_observation(entry, index))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReadError(f"{path}: HAR entry {index} is malformed ({first_line(exc)})") from exc
    return Recording(path, "har", observations, synthetic_times=False)


def _har_observation(entry: dict[str, Any], index: int) -> Observation:
    request, response = entry["request"], entry["response"]
    started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    total = max(float(entry.get("time") or 0), 0.0) / 1000
    status = int(response.get("status") or 0) or None  # HAR writes 0 for failed requests
    content = response.get("content") or {}
    body = content.get("text") or ""
    raw = base64.b64decode(body) if content.get("encoding") == "base64" else body.encode("utf-8", "replace")
    from_cache = entry.get("_fromCache")
    return Observation(
        flow_id=str(entry.get("_id") or entry.get("pageref", "") + f"#{index}"),
        method=request["method"], url=request["url"], status=status,
        request_headers=Headers.of((h["name"], h["value"]) for h in request.get("headers", [])),
        response_headers=Headers.of((h["name"], h["value"]) for h in response.get("headers", [])),
        body=raw[:BODY_EXCERPT_LIMIT], body_truncated=len(raw) > BODY_EXCERPT_LIMIT,
        request_ts=started, response_ts=started + total,
        client=entry.get("connection") or None,
        served_from="browser-cache" if from_cache else None,
    )


# --- VCR.py cassettes --------------------------------------------------------------------------

def read_cassette(path: Path) -> Recording:
    try:
        document = yaml.safe_load(path.read_bytes())
        interactions = document["interactions"]
        if not isinstance(interactions, list):
            raise TypeError("interactions is not a list")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ReadError(f"{path}: not a valid YAML cassette{where}") from exc
    except (KeyError, TypeError) as exc:
        raise ReadError(f"{path}: not a VCR cassette (no interactions list)") from exc
    observations: list[Observation] = []
    clock: float | None = None
    synthetic = False
    for index, interaction in enumerate(interactions):
        try:
            obs, dated = _cassette_observation(interaction, index, clock)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReadError(f"{path}: interaction {index} is malformed ({first_line(exc)})") from exc
        synthetic = synthetic or not dated
        clock = obs.response_ts
        observations.append(obs)
    return Recording(path, "cassette", observations, synthetic_times=synthetic)


def _cassette_observation(interaction: dict[str, Any], index: int, clock: float | None) -> tuple[Observation, bool]:
    request, response = interaction["request"], interaction["response"]
    response_headers = _vcr_headers(response.get("headers"))
    date = parse_http_date(response_headers.get("date"))
    if date is not None:
        ts = date if clock is None else max(date, clock + SEQUENCE_STEP)
    else:
        ts = (clock or 0.0) + SYNTHETIC_SPACING
    body = (response.get("body") or {}).get("string") or b""
    raw = body if isinstance(body, bytes) else str(body).encode("utf-8", "replace")
    status = response.get("status") or {}
    return Observation(
        flow_id=f"interaction-{index}", method=str(request["method"]).upper(), url=str(request["uri"]),
        status=int(status["code"]) if isinstance(status, dict) else int(status),
        request_headers=_vcr_headers(request.get("headers")), response_headers=response_headers,
        body=raw[:BODY_EXCERPT_LIMIT], body_truncated=len(raw) > BODY_EXCERPT_LIMIT,
        request_ts=ts, response_ts=ts,
    ), date is not None


def _vcr_headers(headers: Any) -> Headers:
    """VCR.py stores each header as a list of values."""
    pairs: list[tuple[str, str]] = []
    for name, values in (headers or {}).items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name), str(value)))
    return Headers.of(pairs)
