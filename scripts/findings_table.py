"""Regenerate README's findings tables from the catalogue (between the findings markers).

    .venv/bin/python scripts/findings_table.py
"""

from pathlib import Path

from pollwatch.core.findings import CATALOGUE

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- findings:start -->", "<!-- findings:end -->"
GROUPS = {
    "Cache": ["status-cacheable", "status-from-shared-cache", "status-from-browser-cache", "status-not-modified",
              "status-stale-date", "etag-reused-across-states", "stale-status"],
    "Order": ["state-regression", "terminal-state-changed", "response-reordered"],
    "Lifecycle": ["poll-after-terminal", "polling-abandoned", "stuck-non-terminal", "poll-too-fast"],
    "Correlation": ["accepted-without-job-reference", "unknown-job", "wrong-environment", "non-canonical-status-url",
                    "status-url-off-host", "creation-not-seen"],
    "Errors": ["job-missing", "job-expired", "status-error", "unknown-state-word"],
    "Worker": ["client-behind-worker", "worker-ahead-of-status", "worker-log-unlinked"],
}


def tables() -> str:
    listed = [code for codes in GROUPS.values() for code in codes]
    missing = set(CATALOGUE) - set(listed)
    if missing:
        raise SystemExit(f"add these codes to a group: {sorted(missing)}")
    out = []
    for group, codes in GROUPS.items():
        out += [f"#### {group}", "", "| code | severity | what it means | what to do |", "|---|---|---|---|"]
        out += [f"| `{k.code}` | {k.severity.value} | {k.meaning} | {k.fix} |" for k in map(CATALOGUE.get, codes)]
        out.append("")
    return "\n".join(out)


def main() -> None:
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{tables()}{END}{tail}")


if __name__ == "__main__":
    main()
