"""Accounting after each step: service to the policy, device time to processes, rates
to the cost model."""

from __future__ import annotations

from llmos.kernel.process import Process
from llmos.kernel.scheduler import Scheduler, StepPlan
from llmos.syscalls.replies import UidService


def account_step(
    scheduler: Scheduler, plan: StepPlan, seconds: float, service: dict[int, UidService]
) -> None:
    """Charge one step of ``seconds`` to the processes in ``plan`` (by tokens) and their
    uids' ``service``."""
    total = plan.num_tokens
    num_prefill = 0
    for process, num in plan.scheduled:
        is_decode = num == 1 and process.num_turn_generated > 0
        prefill, decode = (0, 1) if is_decode else (num, 0)
        num_prefill += prefill
        scheduler.policy.on_served(process, prefill, decode)
        share = seconds * num / total if total else 0.0
        process.device_seconds += share
        row = service.setdefault(process.uid, UidService(uid=process.uid))
        row.num_prefill_tokens += prefill
        row.num_decode_tokens += decode
        row.device_seconds += share
    if total and num_prefill:
        scheduler.costs.observe_prefill(num_prefill, seconds * num_prefill / total)
    scheduler.policy.on_step()


def account_copy(scheduler: Scheduler, num_pages: int, seconds: float) -> None:
    """A batch of page moves took ``seconds``."""
    scheduler.costs.observe_copy(num_pages * scheduler.costs.page_bytes, seconds)


def tpot(process: Process) -> float:
    """Mean seconds per output token after the first."""
    if process.first_token_at is None or process.last_token_at is None:
        return 0.0
    if process.num_sampled < 2:
        return 0.0
    return (process.last_token_at - process.first_token_at) / (process.num_sampled - 1)


def ttft(process: Process) -> float:
    """Seconds from creation to the first output token (0 until there is one)."""
    return 0.0 if process.first_token_at is None else process.first_token_at - process.created_at
