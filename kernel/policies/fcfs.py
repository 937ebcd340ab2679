"""``fcfs``: first come, first served."""

from __future__ import annotations

from llmos.kernel.policies.base import Key, Policy
from llmos.kernel.process import Process


class Fcfs(Policy):
    """Arrival order; nothing else counts."""

    name = "fcfs"
    description = "first come, first served"

    def key(self, process: Process) -> Key:
        return (float(process.arrival),)
