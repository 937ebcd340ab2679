"""Step planning: which processes run this step, and how many tokens each.

The mechanism is here; the order is the policy's (:mod:`llmos.kernel.policies`).
Running processes get the token budget first, best-ranked first (decodes
and unfinished prefill chunks); a process whose growth would take its uid
past its page quota first makes room by preempting that uid's own
worst-ranked running process (perhaps itself), and one that finds no free
page preempts the worst-ranked of all. Then ready processes are admitted in
rank order while the budget, the batch limit, the uid's quotas and free
pages allow. A ready process the policy prefers to the worst-ranked running
one (:meth:`Policy.may_preempt`) takes its place even when the batch is
full, once that one has run ``min_run_steps`` steps (so nothing thrashes).
A victim's pages go to swap or are dropped for recompute, whichever the
cost model says is cheaper. A new process first maps whatever its prompt
shares with the prefix cache.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from llmos.kernel.costs import CostModel
from llmos.kernel.memory import NOT_RESIDENT, MemoryManager
from llmos.kernel.pages import pages_for
from llmos.kernel.policies import Fcfs, Policy
from llmos.kernel.process import Process
from llmos.kernel.quotas import Quotas

MAX_PREEMPTIONS_PER_STEP = 4


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

    def drop(self, process: Process) -> int:
        """Unschedule ``process``; return the tokens it had."""
        freed = sum(n for p, n in self.scheduled if p is process)
        self.scheduled = [(p, n) for p, n in self.scheduled if p is not process]
        return freed


class Scheduler:
    """Continuous batching under a token budget, in the order a policy gives."""

    def __init__(
        self,
        memory: MemoryManager,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        policy: Policy | None = None,
        *,
        min_run_steps: int = 4,
        quotas: Quotas | None = None,
        costs: CostModel | None = None,
    ) -> None:
        assert max_num_seqs > 0 and max_num_batched_tokens > 0
        self.memory = memory
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.policy = policy or Fcfs()
        self.min_run_steps = min_run_steps
        self.quotas = quotas or Quotas()
        self.costs = costs or CostModel(page_bytes=1)
        self.waiting: list[Process] = []
        self.running: list[Process] = []
        self._arrivals = itertools.count()

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def add(self, process: Process) -> None:
        """Queue a process that is ready to run."""
        if process.arrival < 0:
            process.arrival = next(self._arrivals)
        process.mark_ready()
        self.waiting.append(process)
        self.policy.on_arrive(process)

    def remove(self, process: Process) -> None:
        """Forget a process (it exited or was killed) and free its pages."""
        self.suspend(process)
        self.memory.release(process)
        self.policy.on_exit(process)

    def suspend(self, process: Process) -> None:
        """Take a process out of the queues (SIGSTOP); its pages stay where they are."""
        if process in self.running:
            self.running.remove(process)
        elif process in self.waiting:
            self.waiting.remove(process)

    def park(self, process: Process) -> None:
        """Take a running process out of the running set, keeping its pages."""
        self.running.remove(process)

    def set_policy(self, policy: Policy) -> None:
        """Switch policies; the new one learns of every queued process."""
        policy.step = self.policy.step  # one clock: admitted_step stays comparable
        for process in [*self.running, *self.waiting]:
            policy.on_arrive(process)
        for process in self.running:
            policy.on_run(process)
        self.policy = policy

    def max_len(self, process: Process, max_model_len: int) -> int:
        """The context ``process`` may reach: ``max_model_len``, or its uid's page quota."""
        quota = self.quotas.max_tokens(process.uid, self.memory.page_size)
        return max_model_len if quota is None else min(quota, max_model_len)

    def schedule(self) -> StepPlan:
        """Plan one step."""
        plan = StepPlan()
        self.running.sort(key=self.policy.key)
        budget = self._schedule_running(plan, self.max_num_batched_tokens)
        if not plan.preempted:
            self._admit_waiting(plan, budget)
        return plan

    def _schedule_running(self, plan: StepPlan, budget: int) -> int:
        index = 0
        while index < len(self.running) and budget > 0:
            process = self.running[index]
            num = min(process.num_pending, budget)
            if not self._within_quota(process, num, plan):
                continue  # it was its uid's worst-ranked: back to the queue
            while not self.memory.can_grow(process, num):
                victim = self.running[-1]  # the worst-ranked
                budget += self._preempt(victim, plan)
                if victim is process:
                    return budget
            self.memory.grow(process, num)
            plan.scheduled.append((process, num))
            budget -= num
            index += 1
        return budget

    def _within_quota(self, process: Process, num: int, plan: StepPlan) -> bool:
        """Keep ``process``'s uid within its page quota as ``process`` grows by ``num``
        tokens, reclaiming from the uid's own processes, worst-ranked first (as a memory
        cgroup does); False if ``process`` itself had to go."""
        if self.quotas.page_limit(process.uid) is None:
            return True
        while not self._uid_fits(process, num):
            victim = [p for p in self.running if p.uid == process.uid][-1]
            self._preempt(victim, plan)  # not scheduled yet: it had no tokens
            if victim is process:
                return False
        return True

    def _uid_fits(self, process: Process, num: int) -> bool:
        """Whether ``process``'s uid stays within its page quota once ``process`` holds
        ``num`` more tokens, counting the device frames of its running processes (a
        frame they share counts once)."""
        if self.quotas.page_limit(process.uid) is None:
            return True
        total = pages_for(process.num_computed_tokens + num, self.memory.page_size)
        own = max(total, len(process.block_table))
        others = [p for p in self.running if p.uid == process.uid and p is not process]
        bound = own + sum(len(p.block_table) for p in others)  # as if nothing were shared
        if self.quotas.allows_pages(process.uid, bound):
            return True  # the usual case: no frame sets to build
        frames = {frame for p in others for frame in p.block_table if frame != NOT_RESIDENT}
        kept = {f for f in process.block_table if f != NOT_RESIDENT}
        cow = self.memory.cow_index(process)
        if cow is not None:  # that page is copied to a frame of its own
            kept.discard(process.block_table[cow])
        return self.quotas.allows_pages(process.uid, len(frames) + own - len(kept & frames))

    def _admit_waiting(self, plan: StepPlan, budget: int) -> None:
        for process in sorted(self.waiting, key=self.policy.key):
            if budget <= 0:
                return
            self.memory.match_prefix(process)
            num = min(process.num_pending, budget)
            if not self._quotas_allow(process):
                continue  # over its uid's quota: others may go
            while not self._fits(process, num):
                victim = self._victim_for(process, plan)
                if victim is None:
                    return  # strict rank order: nothing behind it jumps the queue
                budget += self._preempt(victim, plan)
                num = min(process.num_pending, budget)
            self._admit(process, num, plan)
            budget -= num

    def _quotas_allow(self, process: Process) -> bool:
        """Whether ``process``'s uid may run it, with room for its whole context."""
        if not self.quotas.allows_admission(process, self.running):
            return False
        return self._uid_fits(process, process.num_pending)

    def _fits(self, process: Process, num: int) -> bool:
        slots = len(self.running) < self.max_num_seqs
        return slots and self.memory.can_grow(process, num)

    def _victim_for(self, process: Process, plan: StepPlan) -> Process | None:
        """The worst-ranked running process ``process`` outranks, if it may be preempted."""
        if len(plan.preempted) >= MAX_PREEMPTIONS_PER_STEP or not self.running:
            return None
        victim = max(self.running, key=self.policy.key)
        if not self.policy.may_preempt(process, victim):
            return None
        if self.policy.step - victim.admitted_step < self.min_run_steps:
            return None
        return victim

    def _admit(self, process: Process, num: int, plan: StepPlan) -> None:
        self.waiting.remove(process)
        process.run()
        process.admitted_step = self.policy.step
        self.memory.grow(process, num)
        self.running.append(process)
        self.policy.on_run(process)
        plan.scheduled.append((process, num))

    def _preempt(self, victim: Process, plan: StepPlan) -> int:
        """Take ``victim`` off the device; return the tokens it had this step."""
        self.running.remove(victim)
        freed = plan.drop(victim)
        resident = sum(1 for f in victim.block_table if f != NOT_RESIDENT)
        swap = self.costs.swap_seconds(resident)
        recompute = self.costs.recompute_seconds(victim.num_computed_tokens)
        if self.memory.can_page_out(victim) and swap <= recompute:
            self.memory.page_out(victim)
            victim.preempt()
        else:
            self.memory.release(victim)
            victim.requeue()
        victim.mark_ready()
        self.waiting.append(victim)
        self.policy.on_arrive(victim)
        plan.preempted.append(victim)
        return freed
