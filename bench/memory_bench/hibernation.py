"""The second half of section 4: resume from a hibernation image."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from llmos.kernel.engine import Engine
from llmos.kernel.hibernate import hibernate, read_image, restore
from llmos.kernel.process import Process

from harness.report import Row
from memory_bench.copies import read_seconds
from memory_bench.processes import end, resume
from memory_bench.sizes import Sizes

LLAMA_CPP_RESTORE_MS = 43.0


def bench_hibernate(
    engine: Engine, process: Process, sizes: Sizes, folder: Path, report: dict[str, Any]
) -> Row:
    """Hibernate ``process`` (it ends), then restore it from the image again and again."""
    engine.signal(process.pid, "STOP")
    path = hibernate(engine, process, folder)
    end(engine, [process])

    def restore_once() -> tuple[Process, list[float]]:
        clock = [time.perf_counter()]
        file = read_image(path)
        clock.append(time.perf_counter())
        restored = restore(engine, file)
        clock.append(time.perf_counter())
        resume(engine, restored)
        clock.append(time.perf_counter())
        return restored, [b - a for a, b in itertools.pairwise(clock)]

    times, phases = [], []
    for _ in range(sizes.num_swaps + 1):  # the first one warms up
        restored, phase = restore_once()
        times.append(sum(phase))
        phases.append(phase)
        assert not restored.swapped and restored.num_computed_tokens >= sizes.swap_tokens
        end(engine, [restored])
    ms = 1e3 * statistics.median(times[1:])
    read_ms = 1e3 * read_seconds(path, sizes.num_copies)
    report["hibernate"] = {
        "file_bytes": path.stat().st_size,
        "ms": ms,
        "read_ms": read_ms,
        "phase_ms": {  # medians of read_image (the header), restore (the pages), CONT + page-in
            name: 1e3 * statistics.median(p[i] for p in phases[1:])
            for i, name in enumerate(("read_image", "restore", "page_in"))
        },
    }
    metric = f"resume {sizes.swap_tokens} tokens from hibernation image"
    target = f"<= {LLAMA_CPP_RESTORE_MS:.0f} ms"
    return Row(metric, "ms", ms, read_ms, target, ms <= LLAMA_CPP_RESTORE_MS)
