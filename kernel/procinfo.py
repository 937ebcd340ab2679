"""The ``ps``/``proc`` view of a PCB."""

from __future__ import annotations

from llmos.kernel.accounting import tpot, ttft
from llmos.kernel.process import Process
from llmos.syscalls.replies import ProcInfo


def proc_info(process: Process) -> ProcInfo:
    """One process-table row, as the syscalls return it."""
    return ProcInfo(
        pid=process.pid,
        ppid=process.ppid,
        uid=process.uid,
        model=process.model,
        state=process.state.value,
        nice=process.nice,
        is_chat=process.is_chat,
        created_at=process.created_at,
        started_at=process.started_at or 0.0,
        ended_at=process.ended_at or 0.0,
        num_prompt_tokens=process.num_prompt_tokens,
        num_generated_tokens=process.num_sampled,
        num_prefill_tokens=process.num_prefill_tokens,
        num_pages=len(process.block_table),
        num_preemptions=process.num_preemptions,
        num_turns=process.num_turns,
        num_cached_tokens=process.num_cached_tokens,
        num_page_ins=process.num_page_ins,
        num_page_outs=process.num_page_outs,
        num_swapped=len(process.swapped),
        queue_seconds=process.queue_seconds,
        ttft=ttft(process),
        tpot=tpot(process),
        device_seconds=process.device_seconds,
        exit_status=None if process.exit_status is None else process.exit_status.value,
        error=process.error,
    )
