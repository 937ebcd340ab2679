"""Processes of a benchmark: prefilled, ended, resumed from swap."""

from __future__ import annotations

from collections.abc import Iterable

from llmos.kernel.engine import Engine
from llmos.kernel.process import Process

from harness.workloads import greedy


def prefill(engine: Engine, prompts: list[list[int]]) -> list[Process]:
    """Processes for ``prompts``, stepped until every prompt is computed (they keep running)."""
    processes = [engine.add(p, greedy(1 << 20)) for p in prompts]
    while any(p.num_computed_tokens < p.num_prompt_tokens for p in processes):
        engine.step()
    return processes


def end(engine: Engine, processes: Iterable[Process]) -> None:
    """Kill and reap ``processes``."""
    for process in processes:
        engine.kill(process.pid)
        engine.reap(process.pid)


def resume(engine: Engine, process: Process) -> None:
    """CONT a stopped process and bring its pages back to the device now."""
    engine.signal(process.pid, "CONT")
    engine.memory.page_in(process)
    engine.move_pages()
