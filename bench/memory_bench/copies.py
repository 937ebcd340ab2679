"""The baselines' copies: fresh tensors, file reads, and the page faults they take."""

from __future__ import annotations

import contextlib
import ctypes
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from harness.timing import median_seconds


def measured(fn: Callable[[], object]) -> tuple[float, int]:
    """Seconds and minor page faults (first touches of fresh memory) of one call."""
    faults, start = minor_faults(), time.perf_counter()
    fn()
    return time.perf_counter() - start, minor_faults() - faults


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def release_free_memory() -> None:
    """Hand the C heap's free memory back to the OS (glibc ``malloc_trim``), so the next
    large allocation is new memory, as it is in a fresh process, whatever this run
    allocated and freed before (left alone, a baseline buffer may or may not come from
    memory an earlier step touched: a 3x swing in the baseline from run to run)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def filled(num_bytes: int, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``num_bytes`` with every page of it written (no lazy zero pages)."""
    return torch.randn(num_bytes // torch.empty((), dtype=dtype).element_size()).to(dtype)


def copy_seconds(num_bytes: int, dtype: torch.dtype, repeats: int, fresh: bool = True) -> float:
    """The baseline copy: ``torch.empty_like(x).copy_(x)`` of ``num_bytes`` (into new
    memory, as in a fresh process); with ``fresh`` False, into one destination written
    before (no page faults: the memory's own speed)."""
    x = filled(num_bytes, dtype)
    if fresh:
        return median_seconds(lambda: torch.empty_like(x).copy_(x), repeats, release_free_memory)
    y = torch.empty_like(x).copy_(x)
    return median_seconds(lambda: y.copy_(x), repeats)


def read_seconds(path: Path, repeats: int) -> float:
    """The baseline resume: read a file into memory and copy it into a tensor."""

    def once() -> None:
        raw = bytearray(path.stat().st_size)
        with open(path, "rb", buffering=0) as handle:
            handle.readinto(raw)
        data = torch.frombuffer(raw, dtype=torch.uint8)
        torch.empty_like(data).copy_(data)

    return median_seconds(once, repeats, release_free_memory)
