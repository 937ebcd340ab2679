"""``priority``: by nice (-20 first, 19 last), with aging so nothing starves.

A process waiting in the ready queue gains one nice level every
``aging_steps`` steps it waits, so however low its priority it eventually
outranks the running ones and takes a slot; what it earned stays with it
while it runs, so it is not the next victim the moment it is admitted.
"""

from __future__ import annotations

from llmos.kernel.policies.base import Key, Policy
from llmos.kernel.process import Process


class Priority(Policy):
    """Lowest effective nice first; waiting lowers the effective nice."""

    name = "priority"
    description = "by nice, -20 first; waiting processes age upward"

    def __init__(self, aging_steps: int = 32) -> None:
        super().__init__()
        self.aging_steps = aging_steps
        self.ready_since: dict[int, int] = {}
        self.boost: dict[int, float] = {}  # aging earned while waiting, kept while it runs

    def key(self, process: Process) -> Key:
        since = self.ready_since.get(process.pid)
        waited = 0 if since is None else self.step - since
        boost = self.boost.get(process.pid, 0.0) + waited / self.aging_steps
        return (process.nice - boost, float(process.arrival))

    def on_arrive(self, process: Process) -> None:
        self.ready_since.setdefault(process.pid, self.step)

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        since = self.ready_since.pop(process.pid, None)
        if since is not None:  # admitted: it keeps what it earned, so it is not the next victim
            self.boost[process.pid] = self.boost.get(process.pid, 0.0) + (
                (self.step - since) / self.aging_steps
            )

    def on_exit(self, process: Process) -> None:
        self.ready_since.pop(process.pid, None)
        self.boost.pop(process.pid, None)
