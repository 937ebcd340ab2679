"""SwapSpace on a small pool: moves in any frame order, checksums, imports from a file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmos.drivers.torch.swap_space import CorruptPage, SwapSpace, byte_view, runs
from llmos.syscalls.tiers import Move, Tier

PAGE_SIZE = 4
NUM_PAGES = 12  # device, host and disk tiers each hold this many


def make_swap(tmp_path: Path, dtype: torch.dtype = torch.float32) -> SwapSpace:
    pool = torch.randn(3, 2, 2, NUM_PAGES * PAGE_SIZE, 8).to(dtype)
    swap = SwapSpace(pool, PAGE_SIZE, NUM_PAGES, NUM_PAGES, tmp_path / "swap" / "1-1.swap")
    assert swap.disk is not None and swap.disk.shape[0] == NUM_PAGES
    return swap


def page(swap: SwapSpace, frame: int) -> torch.Tensor:
    return swap.page_major[frame].clone()


def test_runs_split_at_every_gap() -> None:
    assert list(runs([3, 4, 5, 9, 2, 3])) == [(0, 3, 3), (3, 9, 1), (4, 2, 2)]
    assert list(runs([])) == []


frame_lists = st.lists(st.integers(0, NUM_PAGES - 1), min_size=1, max_size=NUM_PAGES, unique=True)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    tier=st.sampled_from([Tier.HOST, Tier.DISK]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
)
def test_pages_come_back_bit_exact_whatever_the_frame_order(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, tier: Tier, dtype: torch.dtype
) -> None:
    swap = make_swap(tmp_path_factory.mktemp("swap"), dtype)
    frames = data.draw(frame_lists)
    slots = data.draw(st.permutations(range(NUM_PAGES)))[: len(frames)]
    back = data.draw(st.permutations(range(NUM_PAGES)))[: len(frames)]
    before = [page(swap, f) for f in frames]
    assert swap.move([Move(Tier.DEVICE, tier, frames, slots, 1)]) == []
    swap.pool.zero_()
    assert swap.move([Move(tier, Tier.DEVICE, slots, back, 1)]) == []
    for frame, expected in zip(back, before, strict=True):
        assert torch.equal(page(swap, frame), expected)
    swap.close()


def test_copy_on_write_copies_one_device_page(tmp_path: Path) -> None:
    swap = make_swap(tmp_path)
    expected = page(swap, 2)
    swap.move([Move(Tier.DEVICE, Tier.DEVICE, [2], [7], 1)])
    assert torch.equal(page(swap, 7), expected)
    swap.close()


def test_a_corrupt_disk_page_skips_only_its_move(tmp_path: Path) -> None:
    swap = make_swap(tmp_path)
    swap.move([Move(Tier.DEVICE, Tier.DISK, [0, 1], [5, 6], 1)])
    swap.move([Move(Tier.DEVICE, Tier.DISK, [2], [7], 2)])
    expected = page(swap, 2)
    swap.pool.zero_()
    assert swap.disk is not None
    swap.disk[6, 3] ^= 0x01
    moves = [Move(Tier.DISK, Tier.DEVICE, [5, 6], [0, 1], 1)]
    moves.append(Move(Tier.DISK, Tier.DEVICE, [7], [2], 2))
    assert swap.move(moves) == [1]
    assert torch.equal(page(swap, 2), expected)
    assert not page(swap, 0).any()  # nothing of the corrupt move was copied
    with pytest.raises(CorruptPage):
        swap.read(Tier.DISK, [6])
    swap.close()


class Reader:
    """A ``fill`` callback over bytes, as the hibernation file reader is over a file."""

    def __init__(self, data: bytes, fail: bool = False) -> None:
        self.stream = io.BytesIO(data)
        self.fail = fail
        self.buffers: list[int] = []

    def __call__(self, buffer: memoryview) -> None:
        self.buffers.append(len(buffer))
        self.stream.readinto(buffer)
        if self.fail:
            raise ValueError("bad page")


@pytest.mark.parametrize("tier", [Tier.DEVICE, Tier.HOST, Tier.DISK])
@pytest.mark.parametrize("frames", [[4, 5, 6], [6, 1, 9]], ids=["run", "scattered"])
def test_import_writes_the_pages_in_order(tmp_path: Path, tier: Tier, frames: list[int]) -> None:
    swap = make_swap(tmp_path, torch.bfloat16)
    expected = [page(swap, f) for f in (0, 1, 2)]
    data = bytes(byte_view(swap.read(Tier.DEVICE, [0, 1, 2])))
    swap.pool.zero_()
    reader = Reader(data)
    swap.import_pages(tier, frames, reader)
    if tier is not Tier.DEVICE:  # bring them to device frames 0-2 to compare
        swap.move([Move(tier, Tier.DEVICE, frames, [0, 1, 2], 1)])
        frames = [0, 1, 2]
    for frame, want in zip(frames, expected, strict=True):
        assert torch.equal(page(swap, frame), want)
    swap.close()


def test_a_run_of_swap_frames_is_read_in_place_in_one_call(tmp_path: Path) -> None:
    swap = make_swap(tmp_path)
    reader = Reader(bytes(3 * swap.page_bytes))
    swap.import_pages(Tier.HOST, [3, 4, 5], reader)
    assert reader.buffers == [3 * swap.page_bytes]
    swap.close()


def test_a_failing_fill_propagates(tmp_path: Path) -> None:
    swap = make_swap(tmp_path)
    with pytest.raises(ValueError, match="bad page"):
        swap.import_pages(Tier.DEVICE, [0, 1], Reader(bytes(2 * swap.page_bytes), fail=True))
    swap.close()


def test_close_deletes_the_swap_file(tmp_path: Path) -> None:
    swap = make_swap(tmp_path)
    path = swap.swap_file
    assert path is not None and path.exists()
    swap.close()
    assert not path.exists()
