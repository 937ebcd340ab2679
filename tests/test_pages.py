"""The page allocator: a hypothesis state machine over allocate/share/free."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from llmos.kernel.pages import PageAllocator, pages_for
from llmos.syscalls.errors import OutOfMemory

NUM_PAGES = 24


class AllocatorMachine(RuleBasedStateMachine):
    """Owners hold lists of frames; the allocator's counts must always agree."""

    def __init__(self) -> None:
        super().__init__()
        self.allocator = PageAllocator(NUM_PAGES, 16)
        self.owners: list[list[int]] = []

    @rule(num=st.integers(0, NUM_PAGES + 2))
    def allocate(self, num: int) -> None:
        if self.allocator.can_allocate(num):
            self.owners.append(self.allocator.allocate(num))
        else:
            with pytest.raises(OutOfMemory):
                self.allocator.allocate(num)

    @precondition(lambda self: bool(self.owners))
    @rule(index=st.integers(0, 1000))
    def share(self, index: int) -> None:
        frames = list(self.owners[index % len(self.owners)])
        self.allocator.share(frames)
        self.owners.append(frames)

    @precondition(lambda self: bool(self.owners))
    @rule(index=st.integers(0, 1000))
    def free(self, index: int) -> None:
        self.allocator.free(self.owners.pop(index % len(self.owners)))

    @invariant()
    def refcounts_equal_references(self) -> None:
        counts = [0] * NUM_PAGES
        for frames in self.owners:
            for frame in frames:
                counts[frame] += 1
        assert [self.allocator.refcount(f) for f in range(NUM_PAGES)] == counts
        assert self.allocator.num_free == counts.count(0)

    def teardown(self) -> None:
        for frames in self.owners:
            self.allocator.free(frames)
        assert self.allocator.num_free == NUM_PAGES


TestAllocator = AllocatorMachine.TestCase


def test_pages_for_rounds_up() -> None:
    assert [pages_for(n, 16) for n in (0, 1, 16, 17, 32, 33)] == [0, 1, 1, 2, 2, 3]


def test_double_free_is_caught() -> None:
    allocator = PageAllocator(4, 16)
    frames = allocator.allocate(2)
    allocator.free(frames)
    with pytest.raises(AssertionError):
        allocator.free(frames)


def test_the_most_recently_freed_frames_come_back_first() -> None:
    allocator = PageAllocator(NUM_PAGES, 16)
    assert allocator.allocate(3) == [0, 1, 2]
    first, second = allocator.allocate(4), allocator.allocate(4)
    allocator.free(first)
    allocator.free(second)
    assert sorted(allocator.allocate(4)) == second  # not frames never touched before
    assert sorted(allocator.allocate(4)) == first
    assert allocator.allocate(1) == [11]
