"""The files pollwatch reads and writes for the user: regular files only, outputs whole or not at all.

A named pipe or a device given where a recording belongs would block forever (a FIFO) or never
end (`/dev/zero`), and replacing one with an output would destroy it. So an input is checked
before it is opened and again on the open descriptor (opened non-blocking, so a FIFO swapped in
between cannot hang us), and an output is written to a temporary file in the target's folder and
renamed over the target only when complete: a full disk or an error midway leaves the old file as
it was and no half-written one.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pollwatch.errors import PollwatchError, ReadError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind_of(mode: int) -> str:
    """What a non-regular file is, in words for a one-line error."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _not_regular(path: Path, mode: int) -> str:
    return f"{path}: is {_kind_of(mode)}, not a regular file (pollwatch reads and writes regular files only)"


def check_input(path: str | Path, error: type[PollwatchError] = ReadError) -> Path:
    """`path` if it names a regular file (symbolic links followed); else `error` saying what it is.
    Nothing is opened: opening a device can itself do something (a tape rewinds)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise error(_not_regular(path, mode))
    return path


def open_input(path: str | Path, error: type[PollwatchError] = ReadError) -> BinaryIO:
    """A regular file opened for reading in binary, or `error`. Checked before opening and again
    on the descriptor, which is opened non-blocking: a FIFO put in its place meanwhile is refused
    instead of waiting for a writer."""
    path = check_input(path, error)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise error(_not_regular(path, mode))
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_input(path: str | Path, limit: int = -1, error: type[PollwatchError] = ReadError) -> bytes:
    """The first `limit` bytes (all: -1) of a regular file, or `error` naming it."""
    with open_input(path, error) as f:
        try:
            return f.read(limit)
        except OSError as exc:
            raise error(f"{path}: cannot read ({exc.strerror or exc})") from exc


def check_output(path: str | Path, error: type[PollwatchError] = PollwatchError) -> Path:
    """The file an output goes to: `path`, or the file a symbolic link there points to. A target
    that exists and is not a regular file (a FIFO, a device, a folder) is refused: writing into it
    would block or go nowhere, and renaming over it would destroy it."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise error(_not_regular(path, mode))
    return target


@contextmanager
def atomic_output(path: str | Path, error: type[PollwatchError] = PollwatchError,
                  what: str = "the output") -> Iterator[Path]:
    """A temporary file beside `path` to write the whole output into; renamed over `path` when the
    block ends without an error, removed otherwise. Target checked as `check_output`; an OSError
    (a full disk, no permission) becomes `error` naming `path`; the file keeps an existing
    target's permissions (else the umask's)."""
    target = check_output(path, error)
    temporary = _create_beside(target, error, f"{path}: cannot write {what}")
    try:
        yield temporary
        if target.exists():
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        _sync(temporary)
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise error(f"{path}: cannot write {what} ({exc.strerror or exc})") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _create_beside(target: Path, error: type[PollwatchError], failure: str) -> Path:
    """A new empty file in `target`'s folder (same file system, so the rename is atomic); created
    with mode 0666 so the umask decides, as for a file written in place."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise error(f"{failure} ({exc.strerror or exc})") from exc
        return candidate
    raise error(f"{failure} (no free name for a temporary file beside it)")


def _sync(path: Path) -> None:
    """Flush the written data to the disk before the rename makes it the target."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
