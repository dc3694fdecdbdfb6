"""README documents every finding code with its severity, and the quick start."""

from pathlib import Path

import pytest

from pollwatch.core.findings import CATALOGUE

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("code", list(CATALOGUE))
def test_every_finding_is_documented_with_its_severity_and_fix(code):
    kind = CATALOGUE[code]
    assert f"| `{code}` | {kind.severity.value} | {kind.meaning} | {kind.fix} |" in README


def test_quick_start_names_the_two_commands():
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "./scripts/demo" in quick_start and "./scripts/test" in quick_start
