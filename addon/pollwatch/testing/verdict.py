"""What fails a test: findings at or above a severity, minus those allowed; for a failure variant
also every client-side finding (whatever its severity) and none of those the variant itself
carries. The failure text lists each finding with its fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pollwatch.core.findings import CATALOGUE, Severity
from pollwatch.errors import ConfigError

CLIENT_CODES = frozenset({"poll-after-terminal", "polling-abandoned", "poll-too-fast", "unknown-job",
                          "wrong-environment", "non-canonical-status-url"})
"""Findings that blame the client, not the server: against a variant, any of them is a failure."""


MARKER_KEYS = ("allow", "min_severity")
"""What `@pytest.mark.pollwatch` takes."""


class Policy(BaseModel):
    """`@pytest.mark.pollwatch(allow=[...], min_severity="error")`, and what a variant adds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_severity: Severity = Severity.WARNING
    allow: frozenset[str] = frozenset()
    always: frozenset[str] = frozenset()
    """Codes that fail at any severity (client-side codes against a variant)."""

    @field_validator("allow", "always")
    @classmethod
    def known(cls, codes: frozenset[str]) -> frozenset[str]:
        unknown = sorted(set(codes) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"unknown finding code(s) {', '.join(unknown)}")
        return codes

    @classmethod
    def of_marker(cls, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> "Policy":
        """The marker's arguments, or a one-line ConfigError naming what is wrong with them (a
        typo must not silently allow nothing; `always` is the plugin's, not the user's)."""
        problems = [f"positional argument(s) {', '.join(map(repr, args))}: use allow=[...]"] if args else []
        problems += [f"{key}: not an argument (takes {', '.join(MARKER_KEYS)})"
                     for key in kwargs or {} if key not in MARKER_KEYS]
        try:
            policy = cls.model_validate({k: v for k, v in (kwargs or {}).items() if k in MARKER_KEYS})
        except ValidationError as exc:
            problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        if problems:
            raise ConfigError("@pytest.mark.pollwatch: " + "; ".join(problems))
        return policy

    def for_variant(self, carried: Iterable[str]) -> "Policy":
        """Against a variant: what it carries is expected; what blames the client always fails."""
        return self.model_copy(update={"allow": self.allow | set(carried), "always": self.always | CLIENT_CODES})

    def failing(self, findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        rank = self.min_severity.rank
        return [f for f in findings if f["code"] not in self.allow
                and (Severity(f["severity"]).rank >= rank or f["code"] in self.always)]


def describe(findings: Iterable[dict[str, Any]]) -> str:
    """One block per finding: severity, code, job, message, and the fix."""
    lines = []
    for f in findings:
        kind = CATALOGUE.get(f["code"])
        lines.append(f"  {f['severity']:<7} {f['code']} job {f['job_id'] or '-'}: {f['message']}")
        if kind is not None and kind.fix not in f["message"]:
            lines.append(f"          fix: {kind.fix}")
    return "\n".join(lines)


def failure_text(label: str, failing: list[dict[str, Any]], policy: Policy, db: str) -> str:
    codes = sorted({f["code"] for f in failing})
    return (f"pollwatch: {len(failing)} finding(s) during this test ({label}; database {db}):\n"
            f"{describe(failing)}\n"
            f"If this is expected, allow it: @pytest.mark.pollwatch(allow={codes!r})"
            + ("" if policy.min_severity is Severity.ERROR else " or min_severity=\"error\""))
