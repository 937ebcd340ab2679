"""The process control block: one generation context and its bookkeeping."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from llmos.syscalls.sampling import SamplingParams


class ProcessState(enum.Enum):
    """Where a process is in its life."""

    READY = "ready"  # queued, waiting for the scheduler
    RUNNING = "running"  # in the running set: holds pages, gets steps
    ZOMBIE = "zombie"  # exited; kept until its status is collected


class ExitStatus(enum.Enum):
    """Why a process exited."""

    STOP = "stop"  # a stop token or stop string
    LENGTH = "length"  # max_tokens or the context limit
    KILLED = "killed"
    ERROR = "error"
    SHUTDOWN = "shutdown"


@dataclass(eq=False)
class Process:
    """A generation context: tokens, pages, sampling state and accounting.

    ``num_computed_tokens`` tokens have their K/V in the pool; the rest of
    ``token_ids`` must still be prefilled (or, for the last one, decoded).
    """

    pid: int
    params: SamplingParams
    token_ids: list[int]
    num_prompt_tokens: int
    sampler_state: Any
    detokenizer: Any
    stop_ids: frozenset[int] = frozenset()
    state: ProcessState = ProcessState.READY
    block_table: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    exit_status: ExitStatus | None = None
    error: str | None = None
    text: str = ""
    num_streamed_chars: int = 0
    num_preemptions: int = 0
    created_at: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    ended_at: float | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_generated(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_pending(self) -> int:
        """Tokens whose K/V is not yet in the pool."""
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def generated_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def is_finished(self) -> bool:
        return self.state is ProcessState.ZOMBIE

    def run(self) -> None:
        assert self.state is ProcessState.READY
        self.state = ProcessState.RUNNING

    def requeue(self) -> None:
        """Back to the ready queue (preempted); its K/V is gone and will be recomputed."""
        assert self.state is ProcessState.RUNNING
        self.state = ProcessState.READY
        self.num_computed_tokens = 0
        self.num_preemptions += 1

    def append_token(self, token: int) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.token_ids.append(token)

    def exit(self, status: ExitStatus, error: str | None = None) -> None:
        assert self.state is not ProcessState.ZOMBIE
        self.state = ProcessState.ZOMBIE
        self.exit_status = status
        self.error = error
        self.ended_at = time.monotonic()
