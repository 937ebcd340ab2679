"""Step planning: which processes run this step, and how many tokens each.

First come, first served for now. Running processes go first (decodes and
unfinished prefills), then waiting ones are admitted while the token budget,
the batch limit and free pages allow. When a running process cannot grow,
the most recently admitted running process is preempted: its pages go to
swap (host, else disk) and come back before it runs again, or, when swap is
full, they are freed and its K/V is recomputed later. A new process first
maps whatever its prompt shares with the prefix cache.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from llmos.kernel.memory import MemoryManager
from llmos.kernel.process import Process


@dataclass
class StepPlan:
    """The processes of one step, each with its number of new tokens."""

    scheduled: list[tuple[Process, int]] = field(default_factory=list)
    preempted: list[Process] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(num for _, num in self.scheduled)

    @property
    def is_empty(self) -> bool:
        return not self.scheduled


class Scheduler:
    """FCFS continuous batching under a per-step token budget."""

    def __init__(
        self, memory: MemoryManager, max_num_seqs: int, max_num_batched_tokens: int
    ) -> None:
        assert max_num_seqs > 0 and max_num_batched_tokens > 0
        self.memory = memory
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.waiting: deque[Process] = deque()
        self.running: list[Process] = []

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, process: Process) -> None:
        self.waiting.append(process)

    def remove(self, process: Process) -> None:
        """Forget a process (it exited or was killed) and free its pages."""
        if process in self.running:
            self.running.remove(process)
        elif process in self.waiting:
            self.waiting.remove(process)
        self.memory.release(process)

    def suspend(self, process: Process) -> None:
        """Take a process out of the queues (SIGSTOP); its pages stay where they are."""
        if process in self.running:
            self.running.remove(process)
        elif process in self.waiting:
            self.waiting.remove(process)

    def park(self, process: Process) -> None:
        """Take a running process out of the running set, keeping its pages."""
        self.running.remove(process)

    def schedule(self) -> StepPlan:
        """Plan one step."""
        plan = StepPlan()
        budget = self._schedule_running(plan, self.max_num_batched_tokens)
        if not plan.preempted:
            self._admit_waiting(plan, budget)
        return plan

    def _schedule_running(self, plan: StepPlan, budget: int) -> int:
        index = 0
        while index < len(self.running) and budget > 0:
            process = self.running[index]
            num = min(process.num_pending, budget)
            while not self.memory.can_grow(process, num):
                victim = self.running[-1]
                self._preempt(victim, plan)
                if victim is process:
                    return budget
            self.memory.grow(process, num)
            plan.scheduled.append((process, num))
            budget -= num
            index += 1
        return budget

    def _admit_waiting(self, plan: StepPlan, budget: int) -> None:
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            process = self.waiting[0]
            self.memory.match_prefix(process)
            num = min(process.num_pending, budget)
            if not self.memory.can_grow(process, num):
                break
            self.waiting.popleft()
            process.run()
            self.memory.grow(process, num)
            self.running.append(process)
            plan.scheduled.append((process, num))
            budget -= num

    def _preempt(self, victim: Process, plan: StepPlan) -> None:
        """Page the victim out to swap if there is room, else drop its K/V for recompute."""
        self.running.remove(victim)
        if self.memory.can_page_out(victim):
            self.memory.page_out(victim)
            victim.preempt()
        else:
            self.memory.release(victim)
            victim.requeue()
        self.waiting.appendleft(victim)
        plan.preempted.append(victim)
        plan.scheduled = [(p, n) for p, n in plan.scheduled if p is not victim]
