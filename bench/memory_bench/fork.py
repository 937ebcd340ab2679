"""Sections 1 and 2: the cost of ``fork``, and the frames a forked family shares."""

from __future__ import annotations

import statistics
import time
from typing import Any

from llmos.kernel.engine import Engine
from llmos.kernel.process import Process

from harness.report import Row
from memory_bench.copies import copy_seconds
from memory_bench.processes import end, prefill
from memory_bench.prompts import Prompts
from memory_bench.sizes import Sizes

FORK_PID = 1_000_000  # pids for fork children, far above the engine's own numbering


def fork_seconds(engine: Engine, parent: Process, repeats: int) -> float:
    """Median time of forking one child off ``parent`` (killed and reaped between forks)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.fork(parent.pid, [FORK_PID], [None])
        times.append(time.perf_counter() - start)
        engine.kill(FORK_PID)
        engine.reap(FORK_PID)
    return statistics.median(times)


def bench_fork(engine: Engine, prompts: Prompts, sizes: Sizes, report: dict[str, Any]) -> list[Row]:
    """Section 1: fork against copying the KV bytes, for each context length."""
    parents = prefill(engine, [prompts.make(n) for n in sizes.fork_lengths])
    page_bytes, dtype = engine.driver.page_bytes, engine.driver.dtype
    rows, scaling = [], []
    for length, parent in zip(sizes.fork_lengths, parents, strict=True):
        num_pages = len(parent.block_table)
        fork_us = 1e6 * fork_seconds(engine, parent, sizes.num_forks)
        copy_us = 1e6 * copy_seconds(num_pages * page_bytes, dtype, sizes.num_copies)
        scaling.append(
            {
                "tokens": parent.num_tokens,
                "pages": num_pages,
                "fork_us": fork_us,
                "us_per_page": fork_us / num_pages,
                "copy_us": copy_us,
            }
        )
        headline = length == sizes.fork_headline
        rows.append(
            Row(
                f"fork, {length}-token process ({num_pages} pages)",
                "us",
                fork_us,
                copy_us,
                "< 1000 us" if headline else "-",
                fork_us < 1000 if headline else None,
            )
        )
    end(engine, parents)
    report["fork_scaling"] = scaling
    return rows


def bench_cow(engine: Engine, prompts: Prompts, sizes: Sizes, report: dict[str, Any]) -> list[Row]:
    """Section 2: frames held by a process and its fork children after each decoded."""
    used_before = engine.memory.allocator.num_used
    [parent] = prefill(engine, [prompts.make(sizes.cow_context)])
    one = len(parent.block_table)
    pids = [FORK_PID + 1 + i for i in range(sizes.num_children)]
    family = [parent, *engine.fork(parent.pid, pids, [None] * len(pids))]
    goal = parent.num_tokens + sizes.cow_decode
    while any(p.num_tokens < goal for p in family):
        engine.step()
    frames = len({f for p in family for f in p.block_table})
    report["cow"] = {
        "pages_one": one,
        "frames_family": frames,
        "num_used_delta": engine.memory.allocator.num_used - used_before,
        "private_copies": one * len(family),
    }
    end(engine, family)
    metric = f"{sizes.num_children} forks of {sizes.cow_context} tokens (+{sizes.cow_decode} each)"
    return [Row(metric, "frames", frames, one, "<= 1.2x", frames <= 1.2 * one)]
