"""``fair``: per-uid fair share by weighted tokens served (a virtual token counter).

Each uid has a counter of the service it received: prompt tokens weigh
``w_prefill``, output tokens ``w_decode``, divided by the process's nice
weight. The uid with the least service goes first. When a uid with nothing
queued queues a process, its counter is lifted to the least counter among
the other uids with work queued or running, so it cannot bank service while
it asks for none (VTC's rule).
"""

from __future__ import annotations

from llmos.kernel.policies.base import Key, Policy, nice_weight
from llmos.kernel.process import Process, ProcessState

BUSY = (ProcessState.READY, ProcessState.RUNNING)


class Fair(Policy):
    """Least-served uid first; FCFS within a uid."""

    name = "fair"
    description = "per-uid fair share of weighted tokens served"

    def __init__(self, w_prefill: float = 1.0, w_decode: float = 2.0) -> None:
        super().__init__()
        self.w_prefill = w_prefill
        self.w_decode = w_decode
        self.service: dict[int, float] = {}
        self.members: dict[int, Process] = {}  # pid -> process, until it exits

    def key(self, process: Process) -> Key:
        return (self.service.get(process.uid, 0.0), float(process.arrival))

    def on_arrive(self, process: Process) -> None:
        uid = process.uid
        if not self._has_queued(uid, besides=process):
            self.service[uid] = max(self.service.get(uid, 0.0), self._floor(uid))
        self.members[process.pid] = process

    def _has_queued(self, uid: int, besides: Process) -> bool:
        return any(
            p.uid == uid and p is not besides and p.state is ProcessState.READY
            for p in self.members.values()
        )

    def _floor(self, uid: int) -> float:
        """The least service among the other uids with work queued or running."""
        busy = {p.uid for p in self.members.values() if p.uid != uid and p.state in BUSY}
        return min((self.service.get(u, 0.0) for u in busy), default=0.0)

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        cost = self.w_prefill * num_prefill + self.w_decode * num_decode
        weight = nice_weight(process.nice) / nice_weight(0)
        self.service[process.uid] = self.service.get(process.uid, 0.0) + cost / weight

    def on_exit(self, process: Process) -> None:
        self.members.pop(process.pid, None)
