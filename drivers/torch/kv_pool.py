"""The KV pool: one tensor holding every layer's K and V pages.

Sized from a memory budget: a byte count, or a fraction of free device
memory (of available host RAM when the device is the CPU).
"""

from __future__ import annotations

import contextlib
import math
import mmap

import psutil
import torch

from llmos.drivers.config import ModelConfig
from llmos.syscalls.errors import InvalidArgument, OutOfMemory


def page_bytes(config: ModelConfig, page_size: int, dtype: torch.dtype) -> int:
    """Bytes one page takes across all layers, K and V."""
    element = torch.empty((), dtype=dtype).element_size()
    per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim
    return per_token * page_size * element


def free_memory_bytes(device: torch.device) -> int:
    """Free device memory, or available host RAM for the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)


def budget_bytes(budget: float | int, device: torch.device) -> int:
    """A budget given as bytes (int > 1) or as a fraction (0 < f <= 1) of free memory."""
    if isinstance(budget, float) and 0.0 < budget <= 1.0:
        return int(free_memory_bytes(device) * budget)
    if budget >= 1:
        return int(budget)
    raise InvalidArgument(f"KV budget must be bytes or a fraction in (0, 1], got {budget}")


def allocate_pool(
    config: ModelConfig,
    page_size: int,
    budget: float | int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """The pool tensor [layers, 2, kvh, num_pages * page_size, head_dim], zero-filled.

    Zeroed so that padded reads of unused slots are finite (masked out, but
    a NaN times zero would still poison the sum).
    """
    num_pages = budget_bytes(budget, device) // page_bytes(config, page_size, dtype)
    if num_pages < 1:
        raise OutOfMemory("KV budget is smaller than one page")
    shape = (
        config.num_hidden_layers,
        2,
        config.num_key_value_heads,
        num_pages * page_size,
        config.head_dim,
    )
    if device.type == "cpu":
        return host_zeros(shape, dtype)
    return torch.zeros(shape, dtype=dtype, device=device)


def host_zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A zero-filled CPU tensor in its own anonymous mapping, backed by huge pages where
    the OS allows (``MADV_HUGEPAGE``).

    Pages are scattered over the pool, so every page read would otherwise miss the
    TLB; 2 MiB pages cover the pool with 512 times fewer entries. Every page is
    written once here (after the advice, so the OS backs it with huge pages), so
    the memory is committed at load and no step pays for first touches.
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    region = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        with contextlib.suppress(OSError):  # a kernel without transparent huge pages
            region.madvise(mmap.MADV_HUGEPAGE)
    flat = torch.frombuffer(region, dtype=torch.uint8, count=nbytes)  # keeps region alive
    flat.zero_()
    return flat.view(dtype).view(shape)
