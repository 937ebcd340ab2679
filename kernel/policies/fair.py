"""``fair``: per-uid fair share by weighted tokens served (a virtual token counter).

Each uid has a counter of the service it received: prompt tokens weigh
``w_prefill``, output tokens ``w_decode``, divided by the process's nice
weight. The uid with the least service goes first. A uid that was idle is
lifted to the least counter among busy uids when it comes back, so it
cannot bank service while away.
"""

from __future__ import annotations

from collections import Counter

from llmos.kernel.policies.base import Key, Policy, nice_weight
from llmos.kernel.process import Process


class Fair(Policy):
    """Least-served uid first; FCFS within a uid."""

    name = "fair"
    description = "per-uid fair share of weighted tokens served"

    def __init__(self, w_prefill: float = 1.0, w_decode: float = 2.0) -> None:
        super().__init__()
        self.w_prefill = w_prefill
        self.w_decode = w_decode
        self.service: dict[int, float] = {}
        self.active: Counter[int] = Counter()  # processes per uid in the scheduler
        self.members: set[int] = set()

    def key(self, process: Process) -> Key:
        return (self.service.get(process.uid, 0.0), float(process.arrival))

    def on_arrive(self, process: Process) -> None:
        if process.pid in self.members:
            return
        self.members.add(process.pid)
        uid = process.uid
        if not self.active[uid]:
            busy = [self.service[u] for u, n in self.active.items() if n and u in self.service]
            floor = min(busy) if busy else 0.0
            self.service[uid] = max(self.service.get(uid, 0.0), floor)
        self.active[uid] += 1

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        cost = self.w_prefill * num_prefill + self.w_decode * num_decode
        weight = nice_weight(process.nice) / nice_weight(0)
        self.service[process.uid] = self.service.get(process.uid, 0.0) + cost / weight

    def on_exit(self, process: Process) -> None:
        if process.pid in self.members:
            self.members.discard(process.pid)
            self.active[process.uid] -= 1
