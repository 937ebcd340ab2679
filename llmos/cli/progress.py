"""A spinner with a pulsing bar and elapsed time, on stderr, while the kernel works.

It draws only on a terminal and leaves nothing behind, so piped output and
``--json`` stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from llmos.cli.render import console


class Activity:
    """A running spinner whose message can change."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def update(self, message: str) -> None:
        """Show ``message`` next to the spinner."""
        self._progress.update(self._task, description=message)


@contextmanager
def activity(message: str, enabled: bool = True) -> Iterator[Activity]:
    """Show ``message`` with a spinner, a pulsing bar and the elapsed time until the block ends."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
        disable=not enabled,
    )
    with progress:
        yield Activity(progress, progress.add_task(message, total=None))
