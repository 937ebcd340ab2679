"""The memory manager: page tables over three tiers, copy-on-write, the prefix cache.

Plain Python. A process's ``block_table`` maps logical page ``i`` to a device
frame, or ``-1`` while the page lives in swap; ``swapped`` maps those pages
to ``(tier, frame)``. A process runs only with every page on the device.
Frames are reference counted per tier: fork and prefix-cache hits share
device frames, and a shared page is copied before it is written. Whatever
must be copied is recorded as :class:`Move`\\ s for the driver (``take_moves``).
"""

from __future__ import annotations

from collections.abc import Iterable

from llmos.kernel.pages import PageAllocator, pages_for
from llmos.kernel.prefix_cache import CacheEntry, HashFn, PrefixCache
from llmos.kernel.process import Process
from llmos.syscalls.errors import Busy, OutOfMemory
from llmos.syscalls.tiers import Move, Tier

NOT_RESIDENT = -1


class MemoryManager:
    """Grows, shares, swaps and releases page tables; answers whether a process fits."""

    def __init__(
        self,
        num_pages: int,
        page_size: int,
        *,
        num_host_pages: int = 0,
        num_disk_pages: int = 0,
        prefix_cache: bool = True,
        salt_per_uid: bool = False,
        hash_fn: HashFn = hash,
    ) -> None:
        self.allocator = PageAllocator(num_pages, page_size)
        self.tiers: dict[Tier, PageAllocator] = {Tier.DEVICE: self.allocator}
        if num_host_pages:
            self.tiers[Tier.HOST] = PageAllocator(num_host_pages, page_size)
        if num_disk_pages:
            self.tiers[Tier.DISK] = PageAllocator(num_disk_pages, page_size)
        self.cache = PrefixCache(page_size, hash_fn) if prefix_cache else None
        self.salt_per_uid = salt_per_uid
        self.moves: list[Move] = []
        self.num_page_ins = 0
        self.num_page_outs = 0

    @property
    def page_size(self) -> int:
        return self.allocator.page_size

    @property
    def num_free_pages(self) -> int:
        """Device frames free now or after evicting unused cached pages."""
        evictable = self.cache.num_evictable if self.cache else 0
        return self.allocator.num_free + evictable

    def take_moves(self) -> list[Move]:
        """The copies recorded since the last call, in order, for the driver."""
        moves, self.moves = self.moves, []
        return moves

    # -- device frames ---------------------------------------------------

    def can_allocate(self, num: int) -> bool:
        return num <= self.num_free_pages

    def allocate(self, num: int) -> list[int]:
        """``num`` device frames, evicting least recently used cached pages if needed."""
        while self.allocator.num_free < num and self.cache and self.cache.num_evictable:
            self.allocator.free([self.cache.evict()])
        return self.allocator.allocate(num)

    def share(self, frames: Iterable[int]) -> None:
        for frame in frames:
            self.allocator.share([frame])
            if self.cache:
                self.cache.mark_in_use(frame)

    def unref(self, frames: Iterable[int], nice: int = 0) -> None:
        """Drop one owner of each device frame; cached ones only the cache holds become
        evictable (those of high-``nice`` owners first)."""
        for frame in frames:
            self.allocator.free([frame])
            if self.cache and frame in self.cache and self.allocator.refcount(frame) == 1:
                self.cache.mark_evictable(frame, nice)

    # -- growing, copy-on-write, releasing ------------------------------

    def cow_index(self, process: Process) -> int | None:
        """The page the next computed token goes into, if it is shared (copy it first)."""
        index = process.num_computed_tokens // self.page_size
        if process.num_computed_tokens % self.page_size == 0 or index >= len(process.block_table):
            return None
        frame = process.block_table[index]
        if frame == NOT_RESIDENT:  # paged in to a fresh frame of its own
            return None
        return index if self.allocator.refcount(frame) > 1 else None

    def pages_needed(self, process: Process, num_new_tokens: int) -> int:
        """Device frames ``process`` needs to compute ``num_new_tokens`` more tokens
        (page-in of swapped pages and a copy-on-write included)."""
        total = pages_for(process.num_computed_tokens + num_new_tokens, self.page_size)
        extra = max(0, total - len(process.block_table))
        cow = 1 if self.cow_index(process) is not None else 0
        return extra + cow + len(process.swapped)

    def can_grow(self, process: Process, num_new_tokens: int) -> bool:
        return self.can_allocate(self.pages_needed(process, num_new_tokens))

    def grow(self, process: Process, num_new_tokens: int) -> None:
        """Make ``process`` resident and give ``num_new_tokens`` more tokens slots."""
        if process.swapped:
            self.page_in(process)
        index = self.cow_index(process)
        if index is not None:
            self.copy_on_write(process, index)
        total = pages_for(process.num_computed_tokens + num_new_tokens, self.page_size)
        needed = max(0, total - len(process.block_table))
        process.block_table.extend(self.allocate(needed))

    def copy_on_write(self, process: Process, index: int) -> None:
        [frame] = self.allocate(1)
        old = process.block_table[index]
        self.moves.append(Move(Tier.DEVICE, Tier.DEVICE, [old], [frame], process.pid))
        self.unref([old])
        process.block_table[index] = frame

    def release(self, process: Process) -> None:
        """Free every page the process holds, in every tier."""
        self.unref((f for f in process.block_table if f != NOT_RESIDENT), process.nice)
        for tier, frame in process.swapped.values():
            self.tiers[tier].free([frame])
        process.block_table = []
        process.swapped = {}
        process.cached_prefix = []

    def truncate(self, process: Process, num_tokens: int) -> None:
        """Keep only the first ``num_tokens`` tokens' K/V; free the pages past them."""
        assert not process.swapped, "truncating a swapped-out process"
        num_pages = pages_for(num_tokens, self.page_size)
        self.unref(process.block_table[num_pages:])
        del process.block_table[num_pages:]
        del process.cached_prefix[num_tokens // self.page_size :]

    def can_ever_fit(self, num_tokens: int) -> bool:
        """Whether a process of ``num_tokens`` tokens fits in the whole pool."""
        return pages_for(num_tokens, self.page_size) <= self.allocator.num_pages

    # -- fork ------------------------------------------------------------

    def fork(self, parent: Process, child: Process) -> None:
        """``child`` shares every page of ``parent`` (copy-on-write)."""
        if parent.swapped:
            raise Busy(f"process {parent.pid} is paged out; continue it before forking")
        child.block_table = list(parent.block_table)
        child.cached_prefix = list(parent.cached_prefix)
        self.share(child.block_table)

    # -- swap ------------------------------------------------------------

    def swap_tier_for(self, num_pages: int) -> Tier | None:
        """Host swap while it has room, then disk; None if neither can take the pages."""
        for tier in (Tier.HOST, Tier.DISK):
            allocator = self.tiers.get(tier)
            if allocator is not None and allocator.can_allocate(num_pages):
                return tier
        return None

    def can_page_out(self, process: Process) -> bool:
        resident = sum(1 for f in process.block_table if f != NOT_RESIDENT)
        return self.swap_tier_for(resident) is not None

    def page_out(self, process: Process) -> Tier:
        """Move every resident page of ``process`` to swap (host, else disk)."""
        indices = [i for i, f in enumerate(process.block_table) if f != NOT_RESIDENT]
        tier = self.swap_tier_for(len(indices))
        if tier is None:
            raise OutOfMemory(f"no swap space for the {len(indices)} pages of {process.pid}")
        frames = [process.block_table[i] for i in indices]
        slots = self.tiers[tier].allocate(len(indices))
        self.moves.append(Move(Tier.DEVICE, tier, frames, slots, process.pid))
        self.unref(frames, process.nice)
        for index, slot in zip(indices, slots, strict=True):
            process.block_table[index] = NOT_RESIDENT
            process.swapped[index] = (tier, slot)
        process.num_page_outs += len(indices)
        self.num_page_outs += len(indices)
        return tier

    def page_in(self, process: Process) -> None:
        """Bring every swapped page of ``process`` back to the device."""
        by_tier: dict[Tier, list[tuple[int, int]]] = {}
        for index, (tier, slot) in sorted(process.swapped.items()):
            by_tier.setdefault(tier, []).append((index, slot))
        for tier, pages in by_tier.items():
            frames = self.allocate(len(pages))
            slots = [slot for _, slot in pages]
            self.moves.append(Move(tier, Tier.DEVICE, slots, frames, process.pid))
            self.tiers[tier].free(slots)
            for (index, _), frame in zip(pages, frames, strict=True):
                process.block_table[index] = frame
        process.num_page_ins += len(process.swapped)
        self.num_page_ins += len(process.swapped)
        process.swapped = {}

    # -- the prefix cache -------------------------------------------------

    def salt_of(self, process: Process) -> int:
        return process.uid if self.salt_per_uid else 0

    def match_prefix(self, process: Process) -> int:
        """Map cached pages of a new process's prompt; return the tokens they cover.

        The last prompt token is always computed (its logits are needed).
        """
        if self.cache is None or process.block_table or process.num_computed_tokens:
            return 0
        size, salt = self.page_size, self.salt_of(process)
        parent: CacheEntry | None = None
        for index in range((process.num_tokens - 1) // size):
            tokens = process.token_ids[index * size : (index + 1) * size]
            entry = self.cache.lookup(parent, tokens, salt)
            if entry is None:
                self.cache.num_misses += 1
                break
            self.cache.num_hits += 1
            self.share([entry.frame])
            process.block_table.append(entry.frame)
            process.cached_prefix.append(entry)
            parent = entry
        matched = len(process.block_table) * size
        process.num_computed_tokens = matched
        process.num_cached_tokens += matched
        return matched

    def cache_full_pages(self, process: Process) -> None:
        """Offer the process's newly computed full pages to the cache."""
        if self.cache is None:
            return
        size, salt = self.page_size, self.salt_of(process)
        for index in range(len(process.cached_prefix), process.num_computed_tokens // size):
            parent = process.cached_prefix[-1] if process.cached_prefix else None
            tokens = process.token_ids[index * size : (index + 1) * size]
            entry = self.cache.lookup(parent, tokens, salt)
            if entry is None:
                frame = process.block_table[index]
                entry = self.cache.insert(parent, tokens, salt, frame)
                if entry is None:  # a collision: stop the chain here
                    return
                self.allocator.share([frame])  # the cache's own reference
            process.cached_prefix.append(entry)
