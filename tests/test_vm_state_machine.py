"""The memory manager: a hypothesis state machine over processes' page tables.

Processes are built directly (no model, no torch): spawn maps whatever its
prompt shares with the prefix cache and grows for the rest, append grows,
fork shares every page, a write after fork copies the shared page, suspend
pages out, resume pages in, evict makes the cache give frames up, rewind
drops tokens (a chat turn re-rendered), exit releases. A shadow of every
frame's slots follows the moves the memory manager records and the tokens
each process writes, so a page written while shared, or copied from the
wrong frame, shows up as a process whose pages no longer hold its tokens.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from llmos.kernel.memory import NOT_RESIDENT, MemoryManager
from llmos.kernel.pages import pages_for
from llmos.kernel.prefix_cache import PrefixCache
from llmos.kernel.process import Process
from llmos.syscalls.errors import Busy, OutOfMemory
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.tiers import Move, Tier

PAGE_SIZE = 4
NUM_DEVICE, NUM_HOST, NUM_DISK = 24, 8, 16
SCRIBBLE = -1  # what a party that takes evicted frames writes into them
INDEX = st.integers(0, 1000)
TOKENS = st.lists(st.integers(0, 3), min_size=1, max_size=10)  # few values: pages repeat
APPEND = st.lists(st.integers(0, 3), min_size=1, max_size=6)

Location = tuple[Tier, int]


def constant_hash(_: object) -> int:
    """Every cache key collides: only the token and parent checks keep pages apart."""
    return 0


def new_process(pid: int, tokens: list[int], uid: int = 0, **fields: int) -> Process:
    return Process(
        pid=pid,
        params=SamplingParams(),
        token_ids=list(tokens),
        num_prompt_tokens=len(tokens),
        sampler_state=None,
        detokenizer=None,
        uid=uid,
        **fields,
    )


def pick(processes: list[Process], index: int) -> Process:
    return processes[index % len(processes)]


class FrameShadow:
    """Which token each slot of each frame holds, as far as the test has written or copied."""

    def __init__(self) -> None:
        self.pages: dict[Location, list[int | None]] = {}

    def page(self, location: Location) -> list[int | None]:
        return self.pages.setdefault(location, [None] * PAGE_SIZE)

    def write(self, location: Location, offset: int, token: int) -> None:
        self.page(location)[offset] = token

    def copy(self, move: Move) -> None:
        rows = [list(self.page((move.src, frame))) for frame in move.src_frames]
        for frame, row in zip(move.dst_frames, rows, strict=True):
            self.pages[(move.dst, frame)] = row


class MemoryMachine(RuleBasedStateMachine):
    """Live processes over one MemoryManager; every frame's owners must add up."""

    hash_fn = staticmethod(hash)
    salt_per_uid = False

    def __init__(self) -> None:
        super().__init__()
        self.memory = MemoryManager(
            NUM_DEVICE,
            PAGE_SIZE,
            num_host_pages=NUM_HOST,
            num_disk_pages=NUM_DISK,
            salt_per_uid=self.salt_per_uid,
            hash_fn=self.hash_fn,
        )
        self.shadow = FrameShadow()
        self.live: list[Process] = []
        self.prompts: list[list[int]] = []
        self.pids = itertools.count(1)

    @property
    def cache(self) -> PrefixCache:
        assert self.memory.cache is not None
        return self.memory.cache

    def refcount(self, frame: int) -> int:
        return self.memory.allocator.refcount(frame)

    def resident(self) -> list[Process]:
        return [p for p in self.live if not p.swapped]

    def swapped_out(self) -> list[Process]:
        return [p for p in self.live if p.swapped]

    def sharing_next_page(self) -> list[Process]:
        """Resident processes whose next token goes into a page someone else holds."""
        return [p for p in self.resident() if self.memory.cow_index(p) is not None]

    # -- what the engine does around the memory manager ------------------

    def carry_out(self) -> list[Move]:
        """Take the recorded moves, check them, and apply them to the shadow in order."""
        moves = self.memory.take_moves()
        for move in moves:
            for tier, frames in ((move.src, move.src_frames), (move.dst, move.dst_frames)):
                assert all(0 <= f < self.memory.tiers[tier].num_pages for f in frames), move
            if move.src is move.dst:
                assert not set(move.src_frames) & set(move.dst_frames), move
            self.shadow.copy(move)
        return moves

    def compute(self, process: Process, num_new: int) -> list[Move]:
        """Grow for the last ``num_new`` tokens, move pages, write their K/V, cache."""
        start = process.num_computed_tokens
        self.memory.grow(process, num_new)
        moves = self.carry_out()
        for position in range(start, start + num_new):
            frame = process.block_table[position // PAGE_SIZE]
            assert self.refcount(frame) == 1, f"pid {process.pid} writes shared frame {frame}"
            token = process.token_ids[position]
            self.shadow.write((Tier.DEVICE, frame), position % PAGE_SIZE, token)
        process.num_computed_tokens += num_new
        self.memory.cache_full_pages(process)
        return moves

    # -- rules -------------------------------------------------------------

    @rule(base=INDEX, keep=st.integers(0, 16), tail=TOKENS, uid=st.integers(1, 2))
    def spawn(self, base: int, keep: int, tail: list[int], uid: int) -> None:
        prefix = self.prompts[base % len(self.prompts)][:keep] if self.prompts else []
        tokens = prefix + tail
        self.prompts.append(tokens)
        process = new_process(next(self.pids), tokens, uid)
        matched = self.memory.match_prefix(process)
        assert matched % PAGE_SIZE == 0 and matched < len(tokens)
        assert process.num_computed_tokens == process.num_cached_tokens == matched
        if self.memory.can_grow(process, process.num_pending):
            self.compute(process, process.num_pending)
            self.live.append(process)
        else:
            self.memory.release(process)  # it never ran: give the mapped prefix back

    @precondition(lambda self: self.resident())
    @rule(index=INDEX, tokens=APPEND)
    def append(self, index: int, tokens: list[int]) -> None:
        process = pick(self.resident(), index)
        if self.memory.can_grow(process, len(tokens)):
            process.token_ids.extend(tokens)
            self.compute(process, len(tokens))

    @precondition(lambda self: self.live)
    @rule(index=INDEX)
    def fork(self, index: int) -> None:
        parent = pick(self.live, index)
        child = new_process(
            next(self.pids),
            parent.token_ids,
            parent.uid,
            ppid=parent.pid,
            num_computed_tokens=parent.num_computed_tokens,
        )
        if parent.swapped:
            with pytest.raises(Busy):
                self.memory.fork(parent, child)
            return
        before = [self.refcount(f) for f in range(NUM_DEVICE)]
        num_free = self.memory.allocator.num_free
        self.memory.fork(parent, child)
        assert self.memory.allocator.num_free == num_free, "fork allocated a frame"
        for frame in range(NUM_DEVICE):
            assert self.refcount(frame) == before[frame] + (frame in parent.block_table)
        assert child.block_table == parent.block_table
        self.live.append(child)

    @precondition(lambda self: self.sharing_next_page())
    @rule(index=INDEX, token=st.integers(0, 3))
    def write_after_fork(self, index: int, token: int) -> None:
        process = pick(self.sharing_next_page(), index)
        if not self.memory.can_grow(process, 1):
            return
        page = process.num_computed_tokens // PAGE_SIZE
        shared = process.block_table[page]
        num_owners = self.refcount(shared)
        free_before = {f for f in range(NUM_DEVICE) if self.refcount(f) == 0}
        evictable_before = set(self.cache.evictable)
        process.token_ids.append(token)
        moves = self.compute(process, 1)
        fresh = process.block_table[page]
        assert moves == [Move(Tier.DEVICE, Tier.DEVICE, [shared], [fresh], process.pid)]
        assert fresh in free_before | evictable_before, "copy-on-write into a frame in use"
        assert self.refcount(shared) == num_owners - 1

    @precondition(lambda self: self.resident())
    @rule(index=INDEX)
    def suspend(self, index: int) -> None:
        process = pick(self.resident(), index)
        num_pages = len(process.block_table)
        if not self.memory.can_page_out(process):
            with pytest.raises(OutOfMemory):
                self.memory.page_out(process)
            return
        host_has_room = self.memory.tiers[Tier.HOST].can_allocate(num_pages)
        tier = self.memory.page_out(process)
        self.carry_out()
        assert tier is (Tier.HOST if host_has_room else Tier.DISK)
        assert process.block_table == [NOT_RESIDENT] * num_pages
        assert sorted(process.swapped) == list(range(num_pages))
        assert {t for t, _ in process.swapped.values()} == {tier}

    @precondition(lambda self: self.swapped_out())
    @rule(index=INDEX, through_grow=st.booleans())
    def resume(self, index: int, through_grow: bool) -> None:
        process = pick(self.swapped_out(), index)
        if not self.memory.can_allocate(len(process.swapped)):
            return
        if through_grow:
            self.memory.grow(process, 0)
        else:
            self.memory.page_in(process)
        self.carry_out()
        assert NOT_RESIDENT not in process.block_table and not process.swapped

    @precondition(lambda self: self.memory.cache is not None and self.cache.num_evictable)
    @rule(extra=st.integers(1, NUM_DEVICE))
    def evict(self, extra: int) -> None:
        """Take more frames than are free, so the cache must give up its oldest pages."""
        allocator = self.memory.allocator
        num = min(allocator.num_free + extra, self.memory.num_free_pages)
        num_evicted = num - allocator.num_free
        oldest = list(self.cache.evictable)[:num_evicted]
        frames = self.memory.allocate(num)
        assert set(oldest) <= set(frames), "evicted out of LRU order"
        for frame in frames:
            assert self.refcount(frame) == 1 and frame not in self.cache
            for offset in range(PAGE_SIZE):
                self.shadow.write((Tier.DEVICE, frame), offset, SCRIBBLE)
        self.memory.unref(frames)

    @precondition(lambda self: self.resident())
    @rule(index=INDEX, keep=st.integers(1, 40))
    def rewind(self, index: int, keep: int) -> None:
        """Drop the tokens past ``keep`` (a chat turn re-rendered); the next write into a
        kept page that is shared or cached must copy it."""
        process = pick(self.resident(), index)
        keep = min(keep, process.num_computed_tokens)
        del process.token_ids[keep:]
        process.num_computed_tokens = keep
        self.memory.truncate(process, keep)
        assert len(process.block_table) == pages_for(keep, PAGE_SIZE)

    @precondition(lambda self: self.live)
    @rule(index=INDEX)
    def exit(self, index: int) -> None:
        process = self.live.pop(index % len(self.live))
        self.memory.release(process)
        assert process.block_table == [] and process.swapped == {}

    # -- invariants --------------------------------------------------------

    def references(self, tier: Tier) -> Counter[int]:
        """Owners of each frame of ``tier``: page tables, and the cache on the device."""
        if tier is not Tier.DEVICE:
            return Counter(f for p in self.live for t, f in p.swapped.values() if t is tier)
        counts = Counter(f for p in self.live for f in p.block_table if f != NOT_RESIDENT)
        counts.update(self.cache.by_frame.keys())
        return counts

    @invariant()
    def refcounts_equal_references(self) -> None:
        for tier, allocator in self.memory.tiers.items():
            expected = self.references(tier)
            actual = {f: allocator.refcount(f) for f in range(allocator.num_pages)}
            assert actual == {f: expected[f] for f in range(allocator.num_pages)}, tier

    @invariant()
    def free_exactly_when_unreferenced(self) -> None:
        for allocator in self.memory.tiers.values():
            free = list(allocator._free)
            unreferenced = {f for f in range(allocator.num_pages) if allocator.refcount(f) == 0}
            assert len(free) == len(set(free)) and set(free) == unreferenced

    @invariant()
    def page_tables_are_well_formed(self) -> None:
        for process in self.live:
            table = process.block_table
            resident = [f for f in table if f != NOT_RESIDENT]
            assert len(resident) == len(set(resident)), f"frame twice in pid {process.pid}"
            assert len(set(process.swapped.values())) == len(process.swapped)
            assert set(process.swapped) == {i for i, f in enumerate(table) if f == NOT_RESIDENT}
            assert len(table) == pages_for(process.num_computed_tokens, PAGE_SIZE)

    @invariant()
    def evictable_means_only_the_cache_holds_it(self) -> None:
        cache = self.cache
        only_cached = {f for f in cache.by_frame if self.refcount(f) == 1}
        assert set(cache.evictable) == only_cached
        assert len(cache.by_key) == len(cache.by_frame)
        for frame, entry in cache.by_frame.items():
            assert entry.frame == frame and cache.by_key[entry.key] is entry

    @invariant()
    def every_page_holds_its_tokens(self) -> None:
        for process in self.live:
            for index, frame in enumerate(process.block_table):
                where = (Tier.DEVICE, frame) if frame != NOT_RESIDENT else process.swapped[index]
                end = min((index + 1) * PAGE_SIZE, process.num_computed_tokens)
                expected = process.token_ids[index * PAGE_SIZE : end]
                assert self.shadow.page(where)[: len(expected)] == expected, (process.pid, index)
        for frame, entry in self.cache.by_frame.items():
            assert tuple(self.shadow.page((Tier.DEVICE, frame))) == entry.tokens

    @invariant()
    def cached_prefixes_chain_through_the_right_tokens(self) -> None:
        for process in self.live:
            parent_id = 0
            assert len(process.cached_prefix) <= process.num_computed_tokens // PAGE_SIZE
            for index, entry in enumerate(process.cached_prefix):
                page = process.token_ids[index * PAGE_SIZE : (index + 1) * PAGE_SIZE]
                assert entry.tokens == tuple(page) and entry.parent_id == parent_id
                assert entry.salt == self.memory.salt_of(process)
                parent_id = entry.entry_id

    @invariant()
    def no_move_left_behind(self) -> None:
        assert self.memory.moves == [], "a rule left moves for the driver"

    def teardown(self) -> None:
        """Once every process has exited, only the cache may hold device frames."""
        for process in self.live:
            self.memory.release(process)
        self.live = []
        self.refcounts_equal_references()
        for frame in range(NUM_DEVICE):
            assert self.refcount(frame) == 0 or (self.refcount(frame) == 1 and frame in self.cache)
        for tier in (Tier.HOST, Tier.DISK):
            assert self.memory.tiers[tier].num_free == self.memory.tiers[tier].num_pages
        assert self.memory.num_free_pages == NUM_DEVICE


class CollidingMemoryMachine(MemoryMachine):
    """The same, with every cache key colliding and prefixes kept to their uid."""

    hash_fn = staticmethod(constant_hash)
    salt_per_uid = True


MACHINE_SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestMemoryManager = MemoryMachine.TestCase
TestMemoryManager.settings = MACHINE_SETTINGS
TestMemoryManagerCollidingHashes = CollidingMemoryMachine.TestCase
TestMemoryManagerCollidingHashes.settings = MACHINE_SETTINGS


# -- copy-on-write, one write per child ------------------------------------


@settings(max_examples=50, deadline=None)
@given(num_tokens=st.integers(1, 30), num_children=st.integers(1, 4))
def test_copy_on_write_copies_from_the_shared_frame_to_a_fresh_one(
    num_tokens: int, num_children: int
) -> None:
    memory = MemoryManager(NUM_DEVICE, PAGE_SIZE, prefix_cache=False)
    parent = new_process(1, list(range(num_tokens)))
    memory.grow(parent, num_tokens)
    parent.num_computed_tokens = num_tokens
    children = [
        new_process(2 + i, parent.token_ids, num_computed_tokens=num_tokens)
        for i in range(num_children)
    ]
    for child in children:
        memory.fork(parent, child)
    last = parent.block_table[-1]
    for child in children:
        free_before = {f for f in range(NUM_DEVICE) if memory.allocator.refcount(f) == 0}
        memory.grow(child, 1)
        moves = memory.take_moves()
        if num_tokens % PAGE_SIZE == 0:  # the next token opens a new page: nothing to copy
            assert moves == [] and child.block_table[:-1] == parent.block_table
            continue
        [move] = moves
        assert (move.src, move.dst, move.src_frames) == (Tier.DEVICE, Tier.DEVICE, [last])
        assert move.dst_frames == [child.block_table[-1]] and move.dst_frames[0] in free_before
        assert memory.allocator.refcount(move.dst_frames[0]) == 1
    assert parent.block_table[-1] == last


# -- resuming a swapped-out process ---------------------------------------


def test_a_swapped_process_that_fits_exactly_can_grow() -> None:
    memory = MemoryManager(4, PAGE_SIZE, num_host_pages=4, prefix_cache=False)
    stopped = new_process(1, list(range(6)))
    memory.grow(stopped, 6)  # frames 0 and 1, the second one half full
    stopped.num_computed_tokens = 6
    other = new_process(2, list(range(8)))
    memory.grow(other, 8)  # frames 2 and 3
    other.num_computed_tokens = 8
    sibling = new_process(3, other.token_ids, num_computed_tokens=8)
    memory.fork(other, sibling)  # frame 3, the pool's last, is shared now
    memory.page_out(stopped)
    assert memory.allocator.num_free == len(stopped.swapped) == 2
    assert memory.pages_needed(stopped, 0) == 2
    assert memory.can_grow(stopped, 0)
