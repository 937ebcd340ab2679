"""Clocks: one call's seconds, the median of many, the fastest of a few."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from harness.contention import other_cpu_meter


def seconds_of(fn: Callable[[], object]) -> float:
    """The wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(
    fn: Callable[[], object], repeats: int, setup: Callable[[], object] = lambda: None
) -> float:
    """The median time of ``fn`` over ``repeats`` calls, ``setup`` run (untimed) before each."""
    times = []
    for _ in range(repeats):
        setup()
        times.append(seconds_of(fn))
    return statistics.median(times)


def timed(fn: Callable[[], int], repeat: int = 1) -> tuple[int, float, float]:
    """Run ``fn`` (returns a token count) ``repeat`` times; return the fastest run's
    (tokens, seconds, cores used by other processes meanwhile)."""
    best: tuple[int, float, float] | None = None
    for _ in range(repeat):
        meter, start = other_cpu_meter(), time.perf_counter()
        tokens = fn()
        run = (tokens, time.perf_counter() - start, meter())
        if best is None or run[1] < best[1]:
            best = run
    assert best is not None
    return best
