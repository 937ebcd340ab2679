"""What ``meminfo`` and ``proc --pages`` show of the memory manager (read only)."""

from __future__ import annotations

from collections.abc import Iterable

from llmos.kernel.memory import NOT_RESIDENT, MemoryManager
from llmos.kernel.process import Process
from llmos.syscalls.replies import PageEntry, PoolInfo, TierInfo
from llmos.syscalls.tiers import Tier


def tier_infos(memory: MemoryManager) -> list[TierInfo]:
    """Pages per tier: total, free, used; on the device also cached and shared."""
    infos = []
    for tier, allocator in memory.tiers.items():
        info = TierInfo(
            tier=tier.value,
            num_pages=allocator.num_pages,
            num_free=allocator.num_free,
            num_used=allocator.num_used,
        )
        if tier is Tier.DEVICE:
            info.num_cached = memory.cache.num_cached if memory.cache else 0
            info.num_shared = sum(
                1 for f in range(allocator.num_pages) if allocator.refcount(f) > 1
            )
        infos.append(info)
    return infos


def fragmentation(memory: MemoryManager, processes: Iterable[Process]) -> float:
    """Reserved token slots that hold no token, as a share of all reserved slots."""
    reserved = filled = 0
    for process in processes:
        num_pages = len(process.block_table)
        if num_pages:
            reserved += num_pages * memory.page_size
            filled += min(process.num_computed_tokens, num_pages * memory.page_size)
    return 1.0 - filled / reserved if reserved else 0.0


def pool_info(
    name: str, memory: MemoryManager, page_bytes: int, processes: Iterable[Process]
) -> PoolInfo:
    """One model's KV pages for ``meminfo``."""
    cache = memory.cache
    return PoolInfo(
        model=name,
        page_size=memory.page_size,
        page_bytes=page_bytes,
        num_pages=memory.allocator.num_pages,
        num_free=memory.num_free_pages,
        num_used=memory.allocator.num_pages - memory.num_free_pages,
        tiers=tier_infos(memory),
        num_page_ins=memory.num_page_ins,
        num_page_outs=memory.num_page_outs,
        num_prefix_hits=cache.num_hits if cache else 0,
        num_prefix_misses=cache.num_misses if cache else 0,
        prefix_hit_rate=cache.hit_rate if cache else 0.0,
        fragmentation=fragmentation(memory, processes),
    )


def page_map(memory: MemoryManager, process: Process) -> list[PageEntry]:
    """Where each logical page of ``process`` lives."""
    entries = []
    size = memory.page_size
    for index, frame in enumerate(process.block_table):
        tokens = max(0, min(size, process.num_computed_tokens - index * size))
        if frame == NOT_RESIDENT:
            tier, slot = process.swapped[index]
            entries.append(PageEntry(index=index, tier=tier.value, frame=slot, num_tokens=tokens))
            continue
        entries.append(
            PageEntry(
                index=index,
                tier=Tier.DEVICE.value,
                frame=frame,
                num_tokens=tokens,
                refcount=memory.allocator.refcount(frame),
                is_cached=bool(memory.cache and frame in memory.cache),
            )
        )
    return entries
