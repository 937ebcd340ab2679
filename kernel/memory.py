"""The memory manager: each process's block table over the page allocator.

Plain Python. A process's block table maps logical page i (tokens
``i*page_size ..``) to a frame. This is the seam that grows into full
virtual memory (tiers, swap, fork, prefix sharing).
"""

from __future__ import annotations

from llmos.kernel.pages import PageAllocator, pages_for
from llmos.kernel.process import Process


class MemoryManager:
    """Grows and releases block tables; answers whether a process can grow."""

    def __init__(self, num_pages: int, page_size: int) -> None:
        self.allocator = PageAllocator(num_pages, page_size)

    @property
    def page_size(self) -> int:
        return self.allocator.page_size

    @property
    def num_free_pages(self) -> int:
        return self.allocator.num_free

    def pages_needed(self, process: Process, num_new_tokens: int) -> int:
        """Extra pages ``process`` needs to hold ``num_new_tokens`` more computed tokens."""
        total = pages_for(process.num_computed_tokens + num_new_tokens, self.page_size)
        return max(0, total - len(process.block_table))

    def can_grow(self, process: Process, num_new_tokens: int) -> bool:
        return self.allocator.can_allocate(self.pages_needed(process, num_new_tokens))

    def grow(self, process: Process, num_new_tokens: int) -> None:
        """Extend the block table so ``num_new_tokens`` more tokens have slots."""
        needed = self.pages_needed(process, num_new_tokens)
        process.block_table.extend(self.allocator.allocate(needed))

    def release(self, process: Process) -> None:
        """Free every page the process holds."""
        self.allocator.free(process.block_table)
        process.block_table = []

    def truncate(self, process: Process, num_tokens: int) -> None:
        """Keep only the first ``num_tokens`` tokens' K/V; free the pages past them."""
        num_pages = pages_for(num_tokens, self.page_size)
        self.allocator.free(process.block_table[num_pages:])
        del process.block_table[num_pages:]

    def can_ever_fit(self, num_tokens: int) -> bool:
        """Whether a process of ``num_tokens`` tokens fits in the whole pool."""
        return pages_for(num_tokens, self.page_size) <= self.allocator.num_pages
