"""Notices the engine thread sends the event loop besides stream events.

They travel in the same batches as events (one queue, one order), so the
loop never sees a process reaped before its exit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reaped:
    """A process left the process table: its event log can go."""

    pid: int


@dataclass(frozen=True)
class ModelsChanged:
    """The set of resident models changed."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class ServiceChanged:
    """Per-uid service so far (``UidService`` rows), for ``sysinfo`` to answer at once."""

    rows: tuple[Any, ...]
