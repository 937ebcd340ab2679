"""The process control block: one generation context and its bookkeeping."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from llmos.syscalls.sampling import SamplingParams


class ProcessState(enum.Enum):
    """Where a process is in its life."""

    NEW = "new"  # created; not yet handed to the scheduler
    READY = "ready"  # queued, waiting for the scheduler
    RUNNING = "running"  # in the running set: holds pages, gets steps
    WAITING = "waiting"  # a chat process between turns: keeps its pages, waits for write
    STOPPED = "stopped"  # suspended by a signal
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
    uid: int = 0
    ppid: int = 0
    nice: int = 0
    model: str = ""
    is_chat: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    state: ProcessState = ProcessState.READY
    resume_state: ProcessState = ProcessState.READY
    block_table: list[int] = field(default_factory=list)
    swapped: dict[int, tuple[Any, int]] = field(default_factory=dict)  # page -> (tier, frame)
    cached_prefix: list[Any] = field(default_factory=list)  # prefix-cache entries of pages 0..
    num_computed_tokens: int = 0
    exit_status: ExitStatus | None = None
    error: str | None = None
    text: str = ""
    num_streamed_chars: int = 0
    num_preemptions: int = 0
    num_prefill_tokens: int = 0
    num_sampled: int = 0  # tokens the model generated, over all turns
    num_cached_tokens: int = 0  # prompt tokens served by the prefix cache
    num_page_ins: int = 0
    num_page_outs: int = 0
    num_turns: int = 1
    turn_start: int = -1
    arrival: int = -1  # the scheduler's arrival order
    admitted_step: int = 0  # the step it last joined the running set
    queue_seconds: float = 0.0  # time spent ready but not running
    ready_since: float | None = None
    device_seconds: float = 0.0  # its share of the steps it ran in
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if self.turn_start < 0:
            self.turn_start = self.num_prompt_tokens

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_generated(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_turn_generated(self) -> int:
        """Tokens generated in the current turn (a chat process has many turns)."""
        return len(self.token_ids) - self.turn_start

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

    @property
    def is_runnable(self) -> bool:
        return self.state is ProcessState.READY

    @property
    def is_live(self) -> bool:
        return self.state is not ProcessState.ZOMBIE

    def mark_ready(self) -> None:
        """Start the queue-wait clock."""
        if self.ready_since is None:
            self.ready_since = time.time()

    def run(self) -> None:
        assert self.state is ProcessState.READY
        self.state = ProcessState.RUNNING
        now = time.time()
        if self.started_at is None:
            self.started_at = now
        if self.ready_since is not None:
            self.queue_seconds += now - self.ready_since
            self.ready_since = None

    def wait_for_input(self) -> None:
        """End a chat turn: keep the pages, sleep until :meth:`next_turn`."""
        assert self.state is ProcessState.RUNNING
        self.state = ProcessState.WAITING

    def next_turn(self, token_ids: list[int], detokenizer: Any) -> None:
        """Append the next user turn's tokens and become runnable again."""
        assert self.state is ProcessState.WAITING
        self.token_ids.extend(token_ids)
        self.turn_start = len(self.token_ids)
        self.num_turns += 1
        self.text = ""
        self.num_streamed_chars = 0
        self.detokenizer = detokenizer
        self.state = ProcessState.READY

    def preempt(self) -> None:
        """Back to the ready queue (preempted); its pages were swapped out and come back."""
        assert self.state is ProcessState.RUNNING
        self.state = ProcessState.READY
        self.num_preemptions += 1

    def stop(self) -> None:
        """Suspend (SIGSTOP); :meth:`cont` returns to where it was."""
        assert self.state in (ProcessState.READY, ProcessState.RUNNING, ProcessState.WAITING)
        self.resume_state = (
            ProcessState.WAITING if self.state is ProcessState.WAITING else ProcessState.READY
        )
        self.state = ProcessState.STOPPED

    def cont(self) -> None:
        """Resume a stopped process (SIGCONT): runnable again, or waiting for input."""
        assert self.state is ProcessState.STOPPED
        self.state = self.resume_state

    def requeue(self) -> None:
        """Back to the ready queue (preempted); its K/V is gone and will be recomputed."""
        assert self.state is ProcessState.RUNNING
        self.state = ProcessState.READY
        self.num_computed_tokens = 0
        self.num_preemptions += 1

    def append_token(self, token: int) -> None:
        now = time.time()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.token_ids.append(token)
        self.num_sampled += 1

    def exit(self, status: ExitStatus, error: str | None = None) -> None:
        assert self.state is not ProcessState.ZOMBIE
        self.state = ProcessState.ZOMBIE
        self.exit_status = status
        self.error = error
        self.ended_at = time.time()
