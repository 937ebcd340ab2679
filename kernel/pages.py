"""The page allocator: physical KV frames, a free list and reference counts.

Plain Python, no torch: the driver owns the tensor the frames index into;
this module only decides which frame numbers are in use and by how many
owners. A frame with a reference count above one is shared (fork, prefix
cache) and must be copied before it is written.

The free list is a stack: the most recently freed frame is handed out
first, so a swap tier keeps reusing memory it has already touched instead
of walking (and first-touching) all of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmos.syscalls.errors import OutOfMemory


def pages_for(num_tokens: int, page_size: int) -> int:
    """Number of pages that hold ``num_tokens`` tokens."""
    return -(-num_tokens // page_size)


class PageAllocator:
    """Hands out frame numbers ``0 .. num_pages-1`` and counts their owners."""

    def __init__(self, num_pages: int, page_size: int) -> None:
        assert num_pages > 0 and page_size > 0
        self.num_pages = num_pages
        self.page_size = page_size
        self._free = list(range(num_pages - 1, -1, -1))  # pops 0, 1, 2, ... first
        self._refcount = [0] * num_pages

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_pages - len(self._free)

    def refcount(self, frame: int) -> int:
        return self._refcount[frame]

    def can_allocate(self, num: int) -> bool:
        return num <= len(self._free)

    def allocate(self, num: int) -> list[int]:
        """Take ``num`` free frames, each with one owner: the most recently freed ones,
        in ascending order (so the frames of one earlier process come back as a run)."""
        if not self.can_allocate(num):
            raise OutOfMemory(f"need {num} KV pages, {self.num_free} free")
        frames = sorted(self._free.pop() for _ in range(num))
        for frame in frames:
            assert self._refcount[frame] == 0
            self._refcount[frame] = 1
        return frames

    def share(self, frames: Iterable[int]) -> None:
        """Add one owner to each frame (fork, prefix-cache hit)."""
        for frame in frames:
            assert self._refcount[frame] > 0, f"sharing free frame {frame}"
            self._refcount[frame] += 1

    def free(self, frames: Iterable[int]) -> None:
        """Drop one owner from each frame; a frame with none left is free again."""
        for frame in frames:
            assert self._refcount[frame] > 0, f"double free of frame {frame}"
            self._refcount[frame] -= 1
            if self._refcount[frame] == 0:
                self._free.append(frame)
