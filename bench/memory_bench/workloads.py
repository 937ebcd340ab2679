"""Sections 5 and 6: fragmentation, and the prefix cache on against off."""

from __future__ import annotations

import statistics
from typing import Any

from llmos.kernel.engine import Engine

from harness.report import Row
from harness.workloads import SCALES, make_workloads
from memory_bench.model_free import model_free_engines
from memory_bench.prompts import Prompts
from memory_bench.runs import (
    Work,
    interleaved,
    median_rate,
    median_seconds_of,
    run_workload,
    summary,
)
from memory_bench.sizes import Sizes


def shared_workload(prompts: Prompts, sizes: Sizes) -> Work:
    """Requests opening with the same (freshly tagged) system prompt, each its own question;
    the first arrives alone (it brings the system prompt into the cache), then the rest."""
    system = prompts.make(sizes.system_prompt)
    rng = prompts.rng
    users = [prompts.make(rng.randint(*sizes.user_prompt)) for _ in range(sizes.num_shared)]
    return [system + user for user in users], [sizes.shared_output] * sizes.num_shared, 1


def bench_workloads(
    engines: dict[str, Engine], prompts: Prompts, sizes: Sizes, report: dict[str, Any]
) -> list[Row]:
    """Sections 5 and 6 on engines ``on`` and ``off`` (the prefix cache), interleaved."""
    varied = make_workloads(prompts.pool, SCALES[sizes.workload], seed=1)["varied"]

    def distinct_work() -> Work:  # fresh tags each run: nothing is ever cached twice
        return [prompts.retag(p) for p in varied.prompts], varied.outputs, 0

    model_free = model_free_engines(engines, prompts.pool[0])
    for engine in [*engines.values(), *model_free.values()]:  # warm-up
        run_workload(engine, [prompts.make(20), prompts.make(30)], [4, 4])
    distinct = interleaved(engines, [distinct_work() for _ in range(sizes.num_runs)])
    kernel_only = interleaved(model_free, [distinct_work() for _ in range(3 * sizes.num_runs)])
    shared = interleaved(engines, [shared_workload(prompts, sizes) for _ in range(sizes.num_runs)])
    frag = [x for r in distinct["on"] for x in r.fragmentation]
    waste = [x for r in distinct["on"] for x in r.reserved_waste]
    on, off = median_rate(distinct["on"]), median_rate(distinct["off"])
    bookkeeping = median_seconds_of(kernel_only["on"]) - median_seconds_of(kernel_only["off"])
    bookkeeping_share = bookkeeping / median_seconds_of(distinct["on"])
    shared_on, shared_off = median_rate(shared["on"]), median_rate(shared["off"])
    report["workloads"] = {
        name: {
            "distinct": [summary(r) for r in distinct[name]],
            "shared": [summary(r) for r in shared[name]],
            "kernel_only": [summary(r) for r in kernel_only[name]],
        }
        for name in engines
    }
    n = len(varied.prompts)
    return [
        Row(
            f"fragmentation, varied ({n}), mean",
            "%",
            100 * statistics.mean(frag),
            100 * statistics.mean(waste),
            "<= 4 %",
            statistics.mean(frag) <= 0.04,
        ),
        Row(f"fragmentation, varied ({n}), max", "%", 100 * max(frag), 100 * max(waste)),
        Row(
            f"prefix cache on, 0 % hits, varied ({n})",
            "tok/s",
            on,
            off,
            ">= 0.99x",
            on >= 0.99 * off,
        ),
        Row(
            f"prefix cache bookkeeping, 0 % hits, varied ({n})",
            "%",
            100 * bookkeeping_share,
            None,
            "< 1 %",
            bookkeeping_share < 0.01,
        ),
        Row(
            f"prefix cache on, shared {sizes.system_prompt}-token system prompt "
            f"({sizes.num_shared})",
            "tok/s",
            shared_on,
            shared_off,
        ),
    ]
