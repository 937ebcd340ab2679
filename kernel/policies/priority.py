"""``priority``: by nice (-20 first, 19 last), with aging so nothing starves.

A process waiting in the ready queue gains one nice level every
``aging_steps`` steps it waits, so however low its priority it eventually
outranks the running ones and takes a slot.
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

    def key(self, process: Process) -> Key:
        since = self.ready_since.get(process.pid)
        waited = 0 if since is None else self.step - since
        return (process.nice - waited / self.aging_steps, float(process.arrival))

    def on_arrive(self, process: Process) -> None:
        self.ready_since[process.pid] = self.step

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        self.ready_since.pop(process.pid, None)  # running: no more aging

    def on_exit(self, process: Process) -> None:
        self.ready_since.pop(process.pid, None)
