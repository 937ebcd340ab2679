"""``priority``: by nice (-20 first, 19 last), with aging so nothing starves.

A process's effective nice is its nice minus its boost, in whole levels. It
gains one level of boost for every ``aging_steps`` steps it waits in the
ready queue, so however low its priority it reaches the front of the queue
and takes the next free slot. Once it runs it keeps the boost it earned and
gives back one level for every ``aging_steps`` steps it runs, so the work it
was admitted ahead of cannot take its slot straight back.

A ready process preempts a running one only when its own nice, without
boost, beats the running one's effective nice by at least one level: a
higher priority takes a slot, waiting alone does not. So equal-nice work is
never time-sliced, and aging reorders the queue without evicting anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmos.kernel.policies.base import Key, Policy
from llmos.kernel.process import Process

MIN_NICE = -20


@dataclass(frozen=True)
class Aging:
    """A process's boost when it last entered the ready queue or the running set."""

    boost: int
    since: int  # the step it did
    is_running: bool


class Priority(Policy):
    """Lowest effective nice first; waiting lowers the effective nice, running raises it."""

    name = "priority"
    description = "by nice, -20 first; waiting processes age upward"

    def __init__(self, aging_steps: int = 32) -> None:
        super().__init__()
        assert aging_steps > 0
        self.aging_steps = aging_steps
        self.aging: dict[int, Aging] = {}

    def boost(self, process: Process) -> int:
        """Levels ``process`` has aged: up while it waits, down while it runs; never
        past nice -20."""
        aging = self.aging.get(process.pid)
        if aging is None:
            return 0
        levels = (self.step - aging.since) // self.aging_steps
        boost = aging.boost - levels if aging.is_running else aging.boost + levels
        return min(max(boost, 0), process.nice - MIN_NICE)

    def level(self, process: Process) -> int:
        """The effective nice: nice minus boost."""
        return process.nice - self.boost(process)

    def key(self, process: Process) -> Key:
        return (float(self.level(process)), float(process.arrival))

    def may_preempt(self, waiter: Process, victim: Process) -> bool:
        return waiter.nice < self.level(victim)

    def on_arrive(self, process: Process) -> None:
        self._restart(process, is_running=False)

    def on_run(self, process: Process) -> None:
        self._restart(process, is_running=True)

    def _restart(self, process: Process, *, is_running: bool) -> None:
        self.aging[process.pid] = Aging(self.boost(process), self.step, is_running)

    def on_exit(self, process: Process) -> None:
        self.aging.pop(process.pid, None)
