"""Section 3 and the first half of 4: page moves between the tiers, resume from disk swap."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from llmos.kernel.engine import Engine
from llmos.kernel.process import Process
from llmos.syscalls.tiers import Tier

from harness.report import Row
from memory_bench.copies import copy_seconds, filled, measured, read_seconds, release_free_memory
from memory_bench.hibernation import LLAMA_CPP_RESTORE_MS, bench_hibernate
from memory_bench.processes import end, prefill, resume
from memory_bench.prompts import Prompts
from memory_bench.sizes import Sizes


def tiers_of(process: Process) -> set[Tier]:
    """The tiers ``process``'s swapped pages are on."""
    return {tier for tier, _ in process.swapped.values()}


def swap_cycle(engine: Engine, on_host: Process, on_disk: Process) -> dict[str, tuple[float, int]]:
    """Stop both (host fills, the second goes to disk), then bring both back; the seconds
    and page faults of each move."""
    found = {
        "device->host": measured(lambda: engine.signal(on_host.pid, "STOP")),
        "device->disk": measured(lambda: engine.signal(on_disk.pid, "STOP")),
    }
    if tiers_of(on_host) != {Tier.HOST} or tiers_of(on_disk) != {Tier.DISK}:
        raise RuntimeError(f"swap went to {tiers_of(on_host)} and {tiers_of(on_disk)}")
    found["host->device"] = measured(lambda: resume(engine, on_host))
    found["disk->device"] = measured(lambda: resume(engine, on_disk))
    assert not on_host.swapped and not on_disk.swapped
    return found


def bench_swap(
    engine: Engine, prompts: Prompts, sizes: Sizes, folder: Path, report: dict[str, Any]
) -> list[Row]:
    """Sections 3 and 4: page moves, resume from disk swap and from a hibernation image."""
    on_host, on_disk = prefill(engine, [prompts.make(sizes.swap_tokens) for _ in range(2)])
    num_bytes = len(on_disk.block_table) * engine.driver.page_bytes
    swap_cycle(engine, on_host, on_disk)  # first touch of the host tensor and the swap file
    cycles = [swap_cycle(engine, on_host, on_disk) for _ in range(sizes.num_swaps)]
    medians = {way: statistics.median(c[way][0] for c in cycles) for way in cycles[0]}
    faults = {way: statistics.median(c[way][1] for c in cycles) for way in cycles[0]}
    copy = copy_seconds(num_bytes, engine.driver.dtype, sizes.num_copies)
    x = filled(num_bytes, engine.driver.dtype)
    release_free_memory()
    _, copy_faults = measured(lambda: torch.empty_like(x).copy_(x))
    warm_copy = copy_seconds(num_bytes, engine.driver.dtype, sizes.num_copies, fresh=False)
    scratch = folder / "same-bytes.raw"
    scratch.write_bytes(filled(num_bytes, torch.uint8).numpy().tobytes())
    read = read_seconds(scratch, sizes.num_copies)
    rows = [
        Row(
            f"page {way} ({num_bytes / 1e6:.3g} MB)",
            "GB/s",
            num_bytes / seconds / 1e9,
            num_bytes / copy / 1e9,
            ">= 0.5x",
            seconds <= 2 * copy,
        )
        for way, seconds in medians.items()
    ]
    ms = 1e3 * medians["disk->device"]
    rows.append(
        Row(
            f"resume {sizes.swap_tokens} tokens from disk swap",
            "ms",
            ms,
            1e3 * read,
            f"<= {LLAMA_CPP_RESTORE_MS:.0f} ms",
            ms <= LLAMA_CPP_RESTORE_MS,
        )
    )
    report["swap"] = {
        "bytes": num_bytes,
        "seconds": medians,
        "copy_seconds": copy,
        "warm_copy_seconds": warm_copy,
        "faults": faults,
        "copy_faults": copy_faults,
        "read_seconds": read,
    }
    rows.append(bench_hibernate(engine, on_host, sizes, folder, report))
    end(engine, [on_disk])
    return rows
