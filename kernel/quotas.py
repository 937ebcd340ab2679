"""Per-uid quotas: how many processes a uid may run at once, and how many pages it may hold.

Over its quota a uid's processes wait in the ready queue; with ``action =
"fail"`` a spawn over the process quota fails with EBUSY instead, and one
whose prompt alone exceeds the page quota fails with ENOMEM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from llmos.kernel.pages import pages_for
from llmos.kernel.process import Process
from llmos.syscalls.errors import Busy, OutOfMemory


@dataclass(frozen=True)
class Quotas:
    """Limits per uid; None means unlimited. Root (uid 0) has none."""

    max_procs: int | None = None
    max_pages: int | None = None
    action: Literal["wait", "fail"] = "wait"

    def allows_admission(self, process: Process, running: Iterable[Process], pages: int) -> bool:
        """Whether ``process`` may join the running set, needing ``pages`` more pages."""
        if process.uid == 0:
            return True
        mine = [p for p in running if p.uid == process.uid]
        if self.max_procs is not None and len(mine) >= self.max_procs:
            return False
        if self.max_pages is not None:
            held = sum(len(p.block_table) for p in mine)
            return held + pages <= self.max_pages
        return True

    def check_spawn(
        self, uid: int, live: Iterable[Process], num_tokens: int, page_size: int
    ) -> None:
        """Raise if a new process of ``uid`` can never run, or must fail at once."""
        if uid == 0:
            return
        if self.max_pages is not None and pages_for(num_tokens, page_size) > self.max_pages:
            raise OutOfMemory(f"uid {uid} may hold {self.max_pages} pages; the prompt needs more")
        mine = sum(1 for p in live if p.uid == uid)
        if self.action == "fail" and self.max_procs is not None and mine >= self.max_procs:
            raise Busy(f"uid {uid} already has {mine} processes (its quota)")
