"""A progress bar for long work, shown only when the work is long enough to need one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(label: str, *, show_from: int) -> Iterator[Callable[[int, int], None]]:
    """Yields `on_progress(done, total)`; the bar (on stderr) appears once `total` reaches
    `show_from`, and disappears when the work is done."""
    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
    task = None

    def on_progress(done: int, total: int) -> None:
        nonlocal task
        if total < show_from:
            return
        if task is None:
            progress.start()
            task = progress.add_task(label, total=total)
        progress.update(task, completed=done)

    try:
        yield on_progress
    finally:
        progress.stop()
