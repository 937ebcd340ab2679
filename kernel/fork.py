"""fork: children that share every page of their parent, copied only on write.

A child starts at the parent's current token with the parent's tokens,
text and K/V (shared pages), and its own sampling parameters and seed if
given; otherwise it draws the same random stream the parent would. The cost
is one reference per page, never per token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmos.kernel.process import Process, ProcessState
from llmos.kernel.stopping import stop_token_ids
from llmos.syscalls.errors import Busy, InvalidArgument
from llmos.syscalls.sampling import SamplingParams

if TYPE_CHECKING:
    from llmos.kernel.engine import Engine

MAX_CHILDREN = 64
FORKABLE = (ProcessState.READY, ProcessState.RUNNING, ProcessState.WAITING)


def fork(
    engine: Engine, parent: Process, pids: list[int], params: list[SamplingParams | None]
) -> list[Process]:
    """Children of ``parent`` with pids ``pids`` (one params entry per child, None = the
    parent's)."""
    check_num_children(len(pids))
    if parent.state not in FORKABLE:
        raise Busy(f"process {parent.pid} is {parent.state.value}; only live, runnable ones fork")
    return [spawn_child(engine, parent, pid, p) for pid, p in zip(pids, params, strict=True)]


def check_num_children(num: int) -> None:
    """InvalidArgument unless a fork of ``num`` children is allowed."""
    if not 1 <= num <= MAX_CHILDREN:
        raise InvalidArgument(f"fork makes 1 to {MAX_CHILDREN} children, not {num}")


def spawn_child(
    engine: Engine, parent: Process, pid: int, params: SamplingParams | None
) -> Process:
    driver = engine.driver
    if params is None:
        sampler = driver.copy_sampler_state(parent.sampler_state)
        params = parent.params
    else:
        params = params.validate()
        sampler = driver.new_sampler_state(params)
    child = Process(
        pid=pid,
        params=params,
        token_ids=list(parent.token_ids),
        num_prompt_tokens=parent.num_prompt_tokens,
        sampler_state=sampler,
        detokenizer=parent.detokenizer.fork(),
        stop_ids=stop_token_ids(params, engine.tokenizer.eos_token_ids),
        uid=parent.uid,
        ppid=parent.pid,
        nice=parent.nice,
        model=parent.model,
        is_chat=parent.is_chat,
        messages=[dict(m) for m in parent.messages],
        state=ProcessState.WAITING if parent.state is ProcessState.WAITING else ProcessState.READY,
        num_computed_tokens=parent.num_computed_tokens,
        text=parent.text,
        num_streamed_chars=parent.num_streamed_chars,
        num_turns=parent.num_turns,
        turn_start=parent.turn_start,
    )
    engine.memory.fork(parent, child)
    engine.adopt(child)
    return child
