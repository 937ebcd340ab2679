"""How busy the rest of the machine was while a benchmark ran (the ``other-cpu`` figures).

A figure is the number of cores that processes other than ours kept busy: on a
shared machine, timings taken while it is high are noise.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CONTENDED = 0.25  # other-cpu (cores) above which a figure is flagged


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (0 where /proc is missing)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and its children, running or exited and waited for."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return float(total)


def other_cpu_meter(
    own_cpu_seconds: Callable[[], float] = time.process_time,
) -> Callable[[], float]:
    """A clock of the cores other processes use from now on; ``own_cpu_seconds`` is what
    counts as ours (this process by default)."""
    busy, ours, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()

    def read() -> float:
        others = busy_cpu_seconds() - busy - (own_cpu_seconds() - ours)
        return max(others, 0.0) / max(time.perf_counter() - start, 1e-9)

    return read


def contended(measure: Callable[[], T]) -> tuple[T, float]:
    """``measure()``, and the cores processes other than ours (children included) kept
    busy meanwhile."""
    meter = other_cpu_meter(tree_cpu_seconds)
    value = measure()
    return value, meter()
