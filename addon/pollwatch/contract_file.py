"""Contract files: the YAML form of `pollwatch.core.contract.Contract`.

Written for review: a comment says what each section is, keys come in a fixed order and lists
sorted, so a diff of two contracts shows what changed and nothing else. Read strictly: any
mistake (a YAML syntax error, a misspelt key, a state word mapped to no state) is a `ConfigError`
naming the file and the line, because a contract that silently teaches nothing is worse than
none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pollwatch import safe_yaml
from pollwatch.core.config import Config
from pollwatch.core.contract import Contract, Family
from pollwatch.errors import ConfigError, first_line
from pollwatch.files import read_input

HEADER = """\
# pollwatch job contract: what each asynchronous endpoint family of the API does.
#   check traffic against it:  pollwatch contract check RECORDING... --contract {name}
#   teach pollwatch with it:   pollwatch analyze RECORDING... --contract {name}
#                              pollwatch run --set pollwatch_contract={name}
# Fields, words, templates and id fields you add here are used to recognise jobs, not only checked.
"""
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "create": ("how jobs are created: method, path ({id}: id-like segments), hosts, status codes",
               ("method", "path", "hosts", "status")),
    "reference": ("where the creating response names the job: its id, and its status URL (header or body link)",
                  ("id_from", "status_url_from")),
    "status_url": ("where the status is read: hosts, and paths with the job id as {id} (?name: query)",
                   ("hosts", "templates")),
    "state": ("the state: fields, outcome fields deciding a final phase, other signals, every word seen -> "
              "its state, terminal states", ("fields", "outcome_fields", "signals", "words", "terminal")),
    "status_responses": ("status responses: codes, cache headers (*: value varies, (absent): missing on some), "
                         "Retry-After seconds", ("codes", "cache_headers", "retry_after")),
}


def dump_contract(contract: Contract, *, name: str = "contract.yaml", sources: Sequence[str] = ()) -> str:
    """The contract as commented YAML that `parse_contract` reads back to the same contract."""
    lines = HEADER.format(name=name).splitlines()
    if sources:
        lines.append(f"# inferred from: {', '.join(sources)}")
    lines += [f"version: {contract.version}", "families:" + ("" if contract.families else " []")]
    for family in contract.families:
        lines += ["", f"  # --- {family.name}", f"  - name: {_scalar(family.name)}"]
        lines += _family(family)
    return "\n".join(lines) + "\n"


def _family(family: Family) -> list[str]:
    data = family.model_dump()
    lines = []
    for section, (comment, keys) in SECTIONS.items():
        value = data[section]
        lines.append(f"    # {comment}")
        if value is None:
            lines.append(f"    {section}: null")
            continue
        lines.append(f"    {section}:")
        for key in keys:
            item = value[key]
            if isinstance(item, dict):
                lines.append(f"      {key}:" + ("" if item else " {}"))
                lines += [f"        {_scalar(k)}: {_scalar(v)}" for k, v in item.items()]
            else:
                lines.append(f"      {key}: {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    """One value in YAML's flow style, quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def load_contract(path: str | Path) -> Contract:
    """Read a contract file; ConfigError naming the file (and line) when it cannot be used."""
    path = Path(path)
    try:
        text = read_input(path, error=ConfigError).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"contract {path}: cannot read ({exc})") from exc
    except ConfigError as exc:
        raise ConfigError(f"contract {exc}") from exc
    return parse_contract(text, str(path))


def parse_contract(text: str, name: str = "contract") -> Contract:
    try:
        node, document = safe_yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"contract {name}:{where} not valid YAML ({problem})") from exc
    if node is None:
        raise ConfigError(f"contract {name}: empty (expected `version: 1` and `families:`)")
    try:
        return Contract.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        field = ".".join(map(str, loc)) or "document"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"contract {name}: line {_line(node, loc)}: {field}: {message}{more}") from exc


def _line(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The line of the key (or list item) a validation error's location names; as deep as the
    location can be followed (a missing key: the line of the object that lacks it)."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                        None)
            if pair is None:
                return line
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def contract_config(path: str | Path | None, **settings: Any) -> Config:
    """Settings from a contract file (if any) merged with the same settings given one by one;
    ConfigError naming the file when they cannot be used together."""
    contract = load_contract(path) if path else None
    try:
        return Config.from_contract(contract, **settings)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"contract {path}: {first_line(exc)}" if path else first_line(exc)) from exc
