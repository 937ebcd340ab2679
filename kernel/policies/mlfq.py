"""``mlfq``: a multi-level feedback queue that favours short jobs.

Level ``i`` lets a process receive ``quanta[i]`` tokens of service before it
is demoted to level ``i + 1``. A new process skips the levels whose quantum
its prompt alone would overrun (skip-join), so a long prompt starts low and
cannot hold back short ones. Every ``boost_steps`` steps every process
returns to the top level, so long jobs never starve.
"""

from __future__ import annotations

from llmos.kernel.policies.base import Key, Policy
from llmos.kernel.process import Process

QUANTA = (64, 256, 1024)  # tokens of service per level; the last level has no limit


class Mlfq(Policy):
    """Lowest level first, FCFS within a level."""

    name = "mlfq"
    description = "multi-level feedback queue: short jobs first, long prompts start low"

    def __init__(self, quanta: tuple[int, ...] = QUANTA, boost_steps: int = 2000) -> None:
        super().__init__()
        self.quanta = quanta
        self.boost_steps = boost_steps
        self.level: dict[int, int] = {}
        self.served: dict[int, int] = {}  # service at the current level

    def key(self, process: Process) -> Key:
        return (float(self.level.get(process.pid, 0)), float(process.arrival))

    def on_arrive(self, process: Process) -> None:
        if process.pid not in self.level:
            self.level[process.pid] = self.join_level(process.num_pending)
            self.served[process.pid] = 0

    def join_level(self, num_prompt_tokens: int) -> int:
        for level, quantum in enumerate(self.quanta):
            if num_prompt_tokens <= quantum:
                return level
        return len(self.quanta)

    def on_served(self, process: Process, num_prefill: int, num_decode: int) -> None:
        pid = process.pid
        if pid not in self.level:
            self.on_arrive(process)
        self.served[pid] += num_prefill + num_decode
        level = self.level[pid]
        if level < len(self.quanta) and self.served[pid] >= self.quanta[level]:
            self.level[pid] = level + 1
            self.served[pid] = 0

    def on_exit(self, process: Process) -> None:
        self.level.pop(process.pid, None)
        self.served.pop(process.pid, None)

    def on_step(self) -> None:
        super().on_step()
        if self.step % self.boost_steps == 0:
            for pid in self.level:
                self.level[pid] = 0
                self.served[pid] = 0
