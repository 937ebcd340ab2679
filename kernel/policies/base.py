"""The interface every scheduling policy implements.

A policy only ranks processes: the scheduler (the mechanism: token budget,
batch limit, pages, preemption) asks it for a key per process, lower keys
first, whether a waiting process may take a running one's slot, and tells it
what happened (arrivals, admissions, service, exits, steps). Policies are
plain Python and never touch pages or tensors.
"""

from __future__ import annotations

from typing import ClassVar

from llmos.kernel.process import Process

Key = tuple[float, ...]


class Policy:
    """Ranks processes; subclasses override :meth:`key` and the hooks they need."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.step = 0  # the scheduler's step clock

    def key(self, process: Process) -> Key:
        """Rank of ``process``: lower runs first (ties broken by arrival)."""
        raise NotImplementedError

    def may_preempt(self, waiter: Process, victim: Process) -> bool:
        """Whether ``waiter`` (ready) deserves the slot of ``victim`` (the worst-ranked
        running process). By default: it ranks strictly better."""
        return self.key(waiter) < self.key(victim)

    def on_arrive(self, process: Process) -> None:
        """``process`` entered the ready queue (new, preempted, resumed or woken)."""

    def on_run(self, process: Process) -> None:
        """``process`` joined the running set."""

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        """``process`` got ``num_prefill`` prompt and ``num_decode`` output tokens this step."""

    def on_exit(self, process: Process) -> None:
        """``process`` left the scheduler for good."""

    def on_step(self) -> None:
        """One step ended."""
        self.step += 1


def nice_weight(nice: int) -> float:
    """A share weight from a nice value, as Linux's CFS: each step of nice is ~1.25x."""
    return 1024.0 / (1.25**nice)
