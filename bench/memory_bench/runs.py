"""One workload run to completion: its time, fragmentation samples and cache counters."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from llmos.kernel.engine import Engine
from llmos.kernel.process import Process
from llmos.kernel.vmstat import fragmentation

from harness.workloads import greedy

Work = tuple[list[list[int]], list[int], int]  # prompts, output lengths, how many arrive first


@dataclass
class Run:
    """One workload run: wall time, useful tokens, per-step samples, cache counters."""

    seconds: float
    tokens: int
    fragmentation: list[float] = field(default_factory=list)
    reserved_waste: list[float] = field(default_factory=list)
    num_hits: int = 0
    num_misses: int = 0
    cached_tokens: int = 0
    prompt_tokens: int = 0

    @property
    def rate(self) -> float:
        """Useful tokens per second."""
        return self.tokens / self.seconds


def reserved_waste(processes: list[Process]) -> float:
    """The baseline's waste: each request reserves prompt + max_tokens slots up front."""
    reserved = sum(p.num_prompt_tokens + p.params.max_tokens for p in processes)
    return 1.0 - sum(p.num_computed_tokens for p in processes) / reserved


def run_workload(
    engine: Engine, prompts: list[list[int]], outputs: list[int], num_first: int = 0
) -> Run:
    """Run to completion; sample fragmentation after every step (not timed). The first
    ``num_first`` requests arrive alone: the rest come once their prompts are computed."""
    cache = engine.memory.cache
    hits, misses = (cache.num_hits, cache.num_misses) if cache else (0, 0)
    run = Run(0.0, sum(map(len, prompts)) + sum(outputs))
    sampling = 0.0
    start = time.perf_counter()
    processes = [engine.add(prompts[i], greedy(outputs[i])) for i in range(num_first)]
    while any(p.num_computed_tokens < p.num_prompt_tokens for p in processes):
        engine.step()
    requests = zip(prompts[num_first:], outputs[num_first:], strict=True)
    processes += [engine.add(p, greedy(n)) for p, n in requests]
    while engine.has_work:
        engine.step()
        sample_start = time.perf_counter()
        if live := [p for p in processes if p.is_live and p.block_table]:
            run.fragmentation.append(fragmentation(engine.memory, live))
            run.reserved_waste.append(reserved_waste(live))
        sampling += time.perf_counter() - sample_start
    run.seconds = time.perf_counter() - start - sampling
    if [p.num_generated for p in processes] != outputs:
        raise RuntimeError("a process generated a different number of tokens than asked")
    if cache:
        run.num_hits, run.num_misses = cache.num_hits - hits, cache.num_misses - misses
    run.cached_tokens = sum(p.num_cached_tokens for p in processes)
    run.prompt_tokens = sum(p.num_prompt_tokens for p in processes)
    for process in processes:
        engine.reap(process.pid)
    return run


def interleaved(engines: dict[str, Engine], works: list[Work]) -> dict[str, list[Run]]:
    """Each work on each engine, alternating which engine goes first."""
    found: dict[str, list[Run]] = {name: [] for name in engines}
    for index, work in enumerate(works):
        names = list(engines) if index % 2 == 0 else list(reversed(engines))
        for name in names:
            found[name].append(run_workload(engines[name], *work))
    return found


def median_rate(runs: list[Run]) -> float:
    """The median tokens/s of ``runs``."""
    return statistics.median(r.rate for r in runs)


def median_seconds_of(runs: list[Run]) -> float:
    """The median seconds of ``runs``."""
    return statistics.median(r.seconds for r in runs)


def summary(run: Run) -> dict[str, Any]:
    """One run's figures for the JSON report."""
    lookups = run.num_hits + run.num_misses
    return {
        "seconds": run.seconds,
        "tok_s": run.rate,
        "steps": len(run.fragmentation),
        "fragmentation_mean": statistics.mean(run.fragmentation) if run.fragmentation else 0.0,
        "page_hit_rate": run.num_hits / lookups if lookups else 0.0,
        "cached_token_share": run.cached_tokens / run.prompt_tokens,
    }
