"""The engine loop: continuous batching, one step at a time.

Usable in-process as a library::

    engine = Engine.from_model("smollm2", EngineConfig(dtype="float32"))
    [done] = engine.generate(["Hello"], SamplingParams(temperature=0, max_tokens=8))

Each :meth:`Engine.step` asks the scheduler for a plan, has the driver run
one forward over it, appends the sampled tokens, and retires processes that
hit a stop condition (their pages go back to the allocator).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.drivers.detokenizer import IncrementalDetokenizer
from llmos.drivers.loaders.registry import load_checkpoint
from llmos.drivers.torch.batch import BatchItem
from llmos.drivers.torch.driver import TorchDriver
from llmos.kernel.accounting import account_copy, account_step
from llmos.kernel.chat import chat_history, next_turn
from llmos.kernel.config import EngineConfig
from llmos.kernel.costs import CostModel
from llmos.kernel.drivers import driver_factory, driver_settings
from llmos.kernel.fork import fork
from llmos.kernel.memory import MemoryManager
from llmos.kernel.policies import make_policy
from llmos.kernel.process import ExitStatus, Process, ProcessState
from llmos.kernel.prompt import Prompt, tokenize_prompt
from llmos.kernel.quotas import Quotas
from llmos.kernel.scheduler import Scheduler, StepPlan
from llmos.kernel.signals import send_signal
from llmos.kernel.stopping import find_stop_string, held_back, length_exit, stop_token_ids
from llmos.syscalls.errors import (
    Busy,
    ContextOverflow,
    InvalidArgument,
    NotFound,
    OutOfMemory,
)
from llmos.syscalls.replies import UidService
from llmos.syscalls.sampling import SamplingParams


@dataclass(frozen=True)
class StepOutput:
    """What one process produced in one step."""

    pid: int
    token_id: int
    text: str
    exit_status: ExitStatus | None = None
    turn_end: ExitStatus | None = None  # a chat process finished a turn and now waits


@dataclass
class Completion:
    """A finished process as :meth:`Engine.generate` returns it."""

    pid: int
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    exit_status: ExitStatus
    stats: dict[str, Any] = field(default_factory=dict)


class Engine:
    """Owns the driver, the memory manager and the scheduler; runs steps."""

    def __init__(self, driver: TorchDriver, config: EngineConfig) -> None:
        self.driver = driver
        self.config = config
        self.tokenizer = driver.tokenizer
        self.memory = MemoryManager(
            driver.num_pages,
            driver.page_size,
            num_host_pages=driver.num_host_pages,
            num_disk_pages=driver.num_disk_pages,
            prefix_cache=config.prefix_cache,
            salt_per_uid=config.prefix_salt_per_uid,
        )
        self.scheduler = Scheduler(
            self.memory,
            config.max_num_seqs,
            config.max_num_batched_tokens,
            make_policy(config.sched),
            min_run_steps=config.min_run_steps,
            quotas=Quotas(config.quota_procs, config.quota_pages, config.quota_action),
            costs=CostModel(page_bytes=driver.page_bytes),
        )
        self.processes: dict[int, Process] = {}
        self._pids = itertools.count(1)
        self.num_steps = 0
        self.service: dict[int, UidService] = {}  # per uid, over this engine's life
        self.num_prefill_tokens = 0
        self.num_decode_tokens = 0

    @classmethod
    def from_model(
        cls, name: str, config: EngineConfig | None = None, data_dir: Path | None = None
    ) -> Engine:
        """Load ``name`` (a preset, a local path or a hub id) and build an engine on it."""
        config = config or EngineConfig()
        checkpoint = load_checkpoint(name, data_dir=data_dir)
        driver = driver_factory(config.driver)(checkpoint, **driver_settings(config, data_dir))
        return cls(driver, config)

    @property
    def max_model_len(self) -> int:
        return self.driver.max_model_len

    @property
    def has_work(self) -> bool:
        return self.scheduler.has_work

    def add(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        pid: int | None = None,
        chat: bool = False,
        **attributes: Any,
    ) -> Process:
        """Create a process for ``prompt`` (text, token ids or chat messages); return it.

        ``chat`` processes wait for :meth:`write` after each reply instead of
        exiting. ``attributes`` are PCB fields the kernel sets (uid, ppid, nice, model).
        """
        params = (params or SamplingParams()).validate()
        history = chat_history(prompt) if chat else []
        token_ids = tokenize_prompt(self.tokenizer, history or prompt)
        self._check_fits(len(token_ids))
        if pid is None:
            pid = next(self._pids)
        assert pid not in self.processes, f"pid {pid} in use"
        process = Process(
            pid=pid,
            params=params,
            token_ids=list(token_ids),
            num_prompt_tokens=len(token_ids),
            sampler_state=self.driver.new_sampler_state(params),
            detokenizer=IncrementalDetokenizer(self.tokenizer, context_ids=token_ids),
            stop_ids=stop_token_ids(params, self.tokenizer.eos_token_ids),
            is_chat=chat,
            messages=history,
            **attributes,
        )
        self.processes[process.pid] = process
        self.scheduler.add(process)
        return process

    def write(self, pid: int, content: str) -> Process:
        """Give a waiting chat process its next user turn and make it runnable.

        Only the new turn is prefilled: the K/V of earlier turns stays in the
        process's pages (unless the template re-renders them differently).
        """
        process = self._get(pid)
        if not process.is_chat:
            raise InvalidArgument(f"process {pid} is not a chat process")
        if process.state is not ProcessState.WAITING:
            raise Busy(f"process {pid} is {process.state.value}, not waiting for input")
        keep, new_ids = next_turn(self.tokenizer, process.token_ids, process.messages, content)
        total = keep + len(new_ids)
        self._check_fits(total)
        if total >= self.scheduler.max_len(process, self.max_model_len):
            raise OutOfMemory(f"uid {process.uid}'s page quota holds fewer than {total + 1} tokens")
        self._rewind(process, keep)
        process.messages.append({"role": "user", "content": content})
        process.next_turn(new_ids, IncrementalDetokenizer(self.tokenizer, context_ids=new_ids))
        self.scheduler.add(process)
        return process

    def fork(
        self, pid: int, child_pids: list[int], params: list[SamplingParams | None]
    ) -> list[Process]:
        """Fork ``pid`` into children that share its pages (see :mod:`llmos.kernel.fork`)."""
        return fork(self, self._get(pid), child_pids, params)

    def signal(self, pid: int, signal: str) -> Process:
        """Send TERM, KILL, STOP or CONT to a process (see :mod:`llmos.kernel.signals`)."""
        process = self._get(pid)
        if process.is_live:
            send_signal(self, process, signal)
        return process

    def renice(self, pid: int, nice: int) -> Process:
        """Change a process's nice; the policy ranks it anew from the next step."""
        process = self._get(pid)
        process.nice = nice
        return process

    def set_policy(self, name: str) -> None:
        """Switch the scheduling policy (see :mod:`llmos.kernel.policies`)."""
        self.scheduler.set_policy(make_policy(name))

    def adopt(self, process: Process) -> None:
        """Enter a process built elsewhere (a fork child, a restored one) into the table."""
        assert process.pid not in self.processes, f"pid {process.pid} in use"
        self.processes[process.pid] = process
        if process.state is ProcessState.READY:
            self.scheduler.add(process)

    def _rewind(self, process: Process, keep: int) -> None:
        if keep < process.num_tokens and process.swapped:
            self.memory.release(process)  # its K/V is in swap: recompute instead
            process.num_computed_tokens = 0
        if keep < process.num_tokens:
            del process.token_ids[keep:]
            process.num_computed_tokens = min(process.num_computed_tokens, keep)
            self.memory.truncate(process, process.num_computed_tokens)

    def _get(self, pid: int) -> Process:
        process = self.processes.get(pid)
        if process is None:
            raise NotFound(f"no such process: {pid}")
        return process

    def reap(self, pid: int) -> Process:
        """Forget an exited process."""
        process = self._get(pid)
        assert not process.is_live, f"reaping live process {pid}"
        return self.processes.pop(pid)

    def _check_fits(self, num_prompt_tokens: int) -> None:
        if num_prompt_tokens == 0:
            raise ContextOverflow("the prompt is empty")
        if num_prompt_tokens >= self.max_model_len:
            raise ContextOverflow(
                f"prompt has {num_prompt_tokens} tokens; the context holds {self.max_model_len}"
            )
        if not self.memory.can_ever_fit(num_prompt_tokens + 1):
            raise OutOfMemory(
                f"a {num_prompt_tokens}-token prompt needs more KV pages than the pool has "
                f"({self.memory.allocator.num_pages})"
            )

    def kill(self, pid: int) -> Process:
        """End a process now (status ``killed``) and free its pages."""
        process = self._get(pid)
        if not process.is_finished:
            self._retire(process, ExitStatus.KILLED)
        return process

    def fail_running(self, error: str) -> list[Process]:
        """End every scheduled process with status ``error`` (a step failed under them)."""
        failed = [*self.scheduler.running, *self.scheduler.waiting]
        for process in failed:
            self._retire(process, ExitStatus.ERROR, error)
        return failed

    def end_all(self, status: ExitStatus) -> list[Process]:
        """End every live process (the kernel is shutting down)."""
        live = [p for p in self.processes.values() if p.is_live]
        for process in live:
            self._retire(process, status)
        return live

    def step(self) -> list[StepOutput]:
        """Run one continuous-batching iteration; return the tokens it produced."""
        started = time.perf_counter()
        plan = self.scheduler.schedule()
        self.move_pages(plan)
        if plan.is_empty:
            return []
        items, samplers = self._build_batch(plan)
        tokens = self.driver.execute(
            items,
            [p.params for p in samplers],
            [p.sampler_state for p in samplers],
            [p.token_ids for p in samplers],
        )
        self.num_steps += 1
        account_step(self.scheduler, plan, time.perf_counter() - started, self.service)
        for process, num in plan.scheduled:
            process.num_computed_tokens += num
            self.memory.cache_full_pages(process)
        return [self._accept(p, t) for p, t in zip(samplers, tokens, strict=True)]

    def move_pages(self, plan: StepPlan | None = None) -> None:
        """Carry out the page copies the memory manager recorded; a process whose swapped
        pages read back corrupt fails (status ``error``), and no other."""
        moves = self.memory.take_moves()
        if not moves:
            return
        started = time.perf_counter()
        corrupt = set(self.driver.move_pages(moves))
        num_pages = sum(m.num_pages for m in moves)
        account_copy(self.scheduler, num_pages, time.perf_counter() - started)
        for pid in corrupt:
            process = self.processes[pid]
            self._retire(process, ExitStatus.ERROR, "its swapped KV pages failed their checksum")
        if plan is not None and corrupt:
            plan.scheduled = [(p, n) for p, n in plan.scheduled if p.pid not in corrupt]

    def close(self) -> None:
        """Release what the driver holds outside the process (its swap file)."""
        self.driver.close()

    def _build_batch(self, plan: StepPlan) -> tuple[list[BatchItem], list[Process]]:
        items: list[BatchItem] = []
        samplers: list[Process] = []
        for process, num in plan.scheduled:
            start = process.num_computed_tokens
            item = BatchItem(
                token_ids=process.token_ids[start : start + num],
                start=start,
                block_table=process.block_table,
                need_logits=start + num == process.num_tokens,
            )
            items.append(item)
            if item.is_decode:
                self.num_decode_tokens += 1
            else:
                self.num_prefill_tokens += num
                process.num_prefill_tokens += num
            if item.need_logits:
                samplers.append(process)
        return items, samplers

    def _accept(self, process: Process, token: int) -> StepOutput:
        process.append_token(token)
        status = self._append_text(process, token)
        status = status or length_exit(process, self.scheduler.max_len(process, self.max_model_len))
        if status is not None and status is not ExitStatus.STOP:
            process.text += process.detokenizer.flush()
        hold = 0 if status is not None else held_back(process.text, process.params.stop)
        delta = process.text[process.num_streamed_chars : len(process.text) - hold]
        process.num_streamed_chars += len(delta)
        if status is not None and self._ends_turn(process):
            self._end_turn(process)
            return StepOutput(process.pid, token, delta, turn_end=status)
        if status is not None:
            self._retire(process, status)
        return StepOutput(process.pid, token, delta, status)

    def _ends_turn(self, process: Process) -> bool:
        """A chat process waits after a reply, unless its context is full."""
        limit = self.scheduler.max_len(process, self.max_model_len)  # context or page quota
        return process.is_chat and process.num_tokens < limit

    def _end_turn(self, process: Process) -> None:
        self.scheduler.park(process)
        process.messages.append({"role": "assistant", "content": process.text})
        process.wait_for_input()

    def _append_text(self, process: Process, token: int) -> ExitStatus | None:
        """Extend the process's text by ``token``; STOP on a stop token or string."""
        if token in process.stop_ids:
            process.text += process.detokenizer.flush()
            return ExitStatus.STOP
        delta = process.detokenizer.feed(token)
        cut = find_stop_string(process.text, delta, process.params.stop)
        if cut is None:
            process.text += delta
            return None
        process.text = (process.text + delta)[:cut]
        return ExitStatus.STOP

    def _retire(self, process: Process, status: ExitStatus, error: str | None = None) -> None:
        self.scheduler.remove(process)
        process.exit(status, error)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams]
    ) -> list[Completion]:
        """Run ``prompts`` to completion together; results in prompt order."""
        per_prompt = [params] * len(prompts) if isinstance(params, SamplingParams) else params
        processes = [self.add(p, sp) for p, sp in zip(prompts, per_prompt, strict=True)]
        while any(not p.is_finished for p in processes):
            self.step()
        return [self._completion(p) for p in processes]

    def _completion(self, process: Process) -> Completion:
        assert process.exit_status is not None
        return Completion(
            pid=process.pid,
            prompt_token_ids=process.token_ids[: process.num_prompt_tokens],
            token_ids=process.generated_ids,
            text=process.text,
            exit_status=process.exit_status,
            stats={"num_preemptions": process.num_preemptions},
        )
