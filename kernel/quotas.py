"""Per-uid quotas: how many processes a uid may run at once, and how many pages it may hold.

Over its process quota a uid's processes wait in the ready queue; with
``action = "fail"`` a spawn over it fails with EBUSY instead. The page quota
works like a memory cgroup's limit: a process is admitted only when its uid
has room for its whole context; as the uid's processes grow, the scheduler
reclaims from that uid's own processes (its worst-ranked first), never from
another's; one process may grow only up to the whole quota (then it ends
with ``length``, as at the context limit), and a spawn whose prompt alone
exceeds it, or a chat write that would, fails with ENOMEM.
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

    def allows_admission(self, process: Process, running: Iterable[Process]) -> bool:
        """Whether ``process``'s uid may run one more process."""
        if process.uid == 0 or self.max_procs is None:
            return True
        return sum(1 for p in running if p.uid == process.uid) < self.max_procs

    def page_limit(self, uid: int) -> int | None:
        """The device pages ``uid`` may hold; None if unlimited (root always is)."""
        return None if uid == 0 else self.max_pages

    def allows_pages(self, uid: int, num_pages: int) -> bool:
        """Whether ``uid`` may hold ``num_pages`` device frames."""
        limit = self.page_limit(uid)
        return limit is None or num_pages <= limit

    def max_tokens(self, uid: int, page_size: int) -> int | None:
        """The longest context one process of ``uid`` may reach: its page quota, full."""
        limit = self.page_limit(uid)
        return None if limit is None else limit * page_size

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
