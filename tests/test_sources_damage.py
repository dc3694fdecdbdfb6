"""However a recording is damaged (cut short anywhere, any part replaced by something of the wrong
type), reading it either works or is one ReadError line naming the file: never a traceback."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pollwatch.errors import ReadError
from pollwatch.sources.readers import read

DATA = Path(__file__).resolve().parent / "data" / "recordings"
RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"
SPECIMENS = sorted(DATA.iterdir())
WRONG = (None, 7, "text", ["a", "list"], {"a": "mapping"})


def read_or_fail_cleanly(path: Path) -> None:
    try:
        read(path)
    except ReadError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@pytest.mark.parametrize("specimen", SPECIMENS + [RECORDINGS / "healthy.flows"], ids=lambda p: p.name)
def test_a_file_cut_short_anywhere_reads_or_fails_in_one_line(tmp_path, specimen):
    data = specimen.read_bytes()
    path = tmp_path / "cut"
    for end in range(1, len(data), max(len(data) // 150, 1)):
        path.write_bytes(data[:end])
        read_or_fail_cleanly(path)


def places(node: Any, trail: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside a parsed document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*trail, key)
        yield from places(value, (*trail, key))


def replaced(document: Any, trail: tuple, value: Any) -> Any:
    changed = copy.deepcopy(document)
    parent = changed
    for key in trail[:-1]:
        parent = parent[key]
    parent[trail[-1]] = value
    return changed


@pytest.mark.parametrize("specimen", SPECIMENS, ids=lambda p: p.name)
def test_any_part_of_the_wrong_type_reads_or_fails_in_one_line(tmp_path, specimen):
    as_json = specimen.read_bytes().lstrip().startswith(b"{")
    text = re.sub(r"(?<!!)!binary", "!!binary", specimen.read_text())  # Ruby's tag, as PyYAML writes it
    document = json.loads(text) if as_json else yaml.safe_load(text)
    path = tmp_path / specimen.name
    for trail in places(document):
        for value in WRONG:
            changed = replaced(document, trail, value)
            path.write_text(json.dumps(changed) if as_json else yaml.safe_dump(changed))
            read_or_fail_cleanly(path)
