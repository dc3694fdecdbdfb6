"""One error tree: every failure a user can act on is a `PollwatchError` whose text is one line.

Library code raises the subclass that names the failure; the CLI turns any `PollwatchError`
into a one-line click error in one place (`pollwatch.cli.app`), and the addon into an
`OptionsError`. Nothing else needs to know the subclasses apart.
"""

from __future__ import annotations

from pydantic import ValidationError

def first_line(exc: BaseException | str, limit: int | None = 200) -> str:
    """The first line of an exception's text (or its type's name), cut to `limit` characters
    (None: whole); a pydantic validation error as `field: message` pairs."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in exc.errors())
    else:
        text = exc if isinstance(exc, str) else str(exc)
    lines = text.strip().splitlines()
    if not lines:
        return type(exc).__name__ if isinstance(exc, BaseException) else ""
    return lines[0][:limit] if limit is not None else lines[0]


class PollwatchError(Exception):
    """A failure the user can act on; `str()` is a single line meant for them."""

    def __init__(self, message: str) -> None:
        super().__init__(first_line(message, None) or type(self).__name__)


class ConfigError(PollwatchError):
    """Settings pollwatch cannot use (an option, a state word, a template)."""


class ReadError(PollwatchError):
    """A recording pollwatch cannot read; the message names the file (and the place)."""


class StorageError(PollwatchError):
    """A database pollwatch cannot open or write."""


class QueryError(PollwatchError):
    """A question the database cannot answer as asked (unknown or ambiguous job)."""


class DiffError(PollwatchError):
    """A job reference for `diff` that cannot be resolved."""


class PruneError(PollwatchError):
    """Bad input for `prune`."""


class ReportError(PollwatchError):
    """A report that cannot be made as asked."""


class RulesError(PollwatchError):
    """A sanitizer rules file pollwatch cannot use; the message names the file."""


class SanitizeError(PollwatchError):
    """Sanitizing cannot go on (unsafe output, overwriting the input, ...)."""


class PseudonymizeError(SanitizeError):
    """No unique pseudonym could be made for an id."""


class ProxyError(PollwatchError):
    """mitmdump could not be started or stopped as expected."""


class ExportError(PollwatchError):
    """An export that cannot be written or sent as asked (`pollwatch export`)."""
