"""Swap space: the host and disk tiers of the KV cache, and the copies between tiers.

Both tiers are page-major: row ``f`` is one whole page (every layer's K and
V), so a page moves as one contiguous row and the disk tier can checksum
it. The host tier is a tensor in RAM (pinned when the device is CUDA); the
disk tier is a locked swap file mapped into memory, one CRC-32 per written
page. The device pool keeps its own layout
``[layers, 2, kv_heads, slots, head_dim]``; a move gathers or scatters its
pages with one indexed copy straight into (or out of) the swap rows.

No move allocates a buffer the size of the pages moved: a fresh buffer
costs a page fault per 4 KiB, more than the copy itself. The pages of a
move are sorted by their swap frame and copied run by run, each run of
consecutive frames being one slice of the tier, and a plain slice copy
when the device frames of the run are consecutive too (the allocator hands
out the most recently freed frames, in ascending order, so a move is
usually a single run).
"""

from __future__ import annotations

import mmap
import os
import shutil
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from llmos.drivers.swap_files import open_locked
from llmos.drivers.swap_files import swap_file_path as swap_file_path
from llmos.syscalls.errors import LlmosError
from llmos.syscalls.tiers import Move, Tier

MAX_DISK_SHARE = 0.5  # the swap file never takes more than this share of free disk
MAX_STAGING_BYTES = 32 << 20  # imports into the device go through a reused buffer this big
Fill = Callable[[memoryview], None]


class CorruptPage(LlmosError):
    """A page read back from the swap file does not match its checksum."""

    code = "EIO"

    def __init__(self, frames: list[int]) -> None:
        super().__init__(f"swap pages {frames} failed their checksum")
        self.frames = frames


def runs(frames: list[int]) -> Iterator[tuple[int, int, int]]:
    """``(position, first frame, length)`` of each run of consecutive frames in ``frames``."""
    start = 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or frames[i] != frames[i - 1] + 1:
            yield start, frames[start], i - start
            start = i


def slot_runs(slots: list[int], frames: list[int]) -> Iterator[tuple[slice, list[int]]]:
    """The pages of a move sorted by swap slot: for each run of consecutive slots, its
    slice of the tier and the device frames that go with it."""
    pairs = sorted(zip(slots, frames, strict=True))
    ordered = [frame for _, frame in pairs]
    for at, first, num in runs([slot for slot, _ in pairs]):
        yield slice(first, first + num), ordered[at : at + num]


def is_run(frames: list[int]) -> bool:
    """Whether ``frames`` are consecutive and ascending (one slice of a tier)."""
    return frames == list(range(frames[0], frames[0] + len(frames))) if frames else False


def byte_view(tensor: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, writable, without a copy."""
    return tensor.view(torch.uint8).reshape(-1).numpy().data


class SwapSpace:
    """The host and disk tiers of one model's KV cache."""

    def __init__(
        self,
        pool: torch.Tensor,
        page_size: int,
        num_host_pages: int,
        num_disk_pages: int,
        swap_file: Path | None,
    ) -> None:
        layers, two, heads, slots, dim = pool.shape
        self.pool = pool
        self.page_size = page_size
        self.num_device_pages = slots // page_size
        self.page_shape = (layers, two, heads, page_size, dim)
        self.page_numel = layers * two * heads * page_size * dim
        self.page_bytes = self.page_numel * pool.element_size()
        self.is_cuda = pool.device.type == "cuda"
        # empty, not zeros: the OS commits host pages only as they are written
        self.host = torch.empty(
            (num_host_pages, self.page_numel), dtype=pool.dtype, pin_memory=self.is_cuda
        )
        self.swap_file = swap_file if num_disk_pages else None
        self._fd: int | None = None
        self.disk = self._map(swap_file, num_disk_pages) if num_disk_pages else None
        # A driver never closed (an in-process engine dropped, or left at exit) still
        # deletes its swap file; close() runs the same release early.
        self._release = weakref.finalize(
            self, release_swap_file, self.swap_file, self._fd, os.getpid()
        )
        self.checksums: dict[int, int] = {}
        self._staging: torch.Tensor | None = None

    def _map(self, path: Path | None, num_pages: int) -> torch.Tensor:
        assert path is not None, "a disk tier needs a swap file path"
        self._fd = open_locked(path)
        free = shutil.disk_usage(path.parent).free
        num_pages = max(1, min(num_pages, int(free * MAX_DISK_SHARE) // self.page_bytes))
        os.ftruncate(self._fd, num_pages * self.page_bytes)  # sparse: written pages only
        mapped = mmap.mmap(self._fd, num_pages * self.page_bytes, mmap.MAP_SHARED)
        return torch.frombuffer(mapped, dtype=torch.uint8).view(num_pages, self.page_bytes)

    @property
    def pool_pages(self) -> torch.Tensor:
        """The device pool viewed as ``[layers, 2, kv_heads, pages, page_size, head_dim]``."""
        layers, two, heads, slots, dim = self.pool.shape
        return self.pool.view(layers, two, heads, slots // self.page_size, self.page_size, dim)

    @property
    def page_major(self) -> torch.Tensor:
        """The device pool as ``[pages, layers, 2, kv_heads, page_size, head_dim]`` (a view)."""
        return self.pool_pages.permute(3, 0, 1, 2, 4, 5)

    def rows(self, tier: Tier) -> torch.Tensor:
        """The host or disk tier as rows ``[frames, page_numel]`` of the pool's dtype."""
        if tier is Tier.HOST:
            return self.host
        assert tier is Tier.DISK and self.disk is not None
        return self.disk.view(self.pool.dtype)

    # -- moves -------------------------------------------------------------------

    @torch.inference_mode()
    def move(self, moves: list[Move]) -> list[int]:
        """Carry out ``moves`` in order, one batched copy each; return the pids whose
        pages failed their checksum (those moves are skipped, the rest go on)."""
        corrupt: list[int] = []
        for move in moves:
            try:
                self._move(move)
            except CorruptPage:
                corrupt.append(move.pid)
        return corrupt

    def _move(self, move: Move) -> None:
        if move.src is Tier.DEVICE and move.dst is Tier.DEVICE:  # copy-on-write
            self.scatter(move.dst_frames, self.gather(move.src_frames))
            return
        if move.src is Tier.DISK:
            self._verify(move.src_frames)
        if move.src is not Tier.DEVICE and move.dst is not Tier.DEVICE:
            rows = self.rows(move.src).index_select(0, torch.tensor(move.src_frames))
            self.rows(move.dst).index_put_((torch.tensor(move.dst_frames),), rows)
        elif move.src is Tier.DEVICE:
            self._page_out(move.src_frames, move.dst, move.dst_frames)
        else:
            self._page_in(move.src, move.src_frames, move.dst_frames)
        if move.dst is Tier.DISK:
            self._record(move.dst_frames)

    def _page_out(self, frames: list[int], tier: Tier, slots: list[int]) -> None:
        rows = self.rows(tier)
        for run, device_frames in slot_runs(slots, frames):
            self.gather(device_frames, out=rows[run])

    def _page_in(self, tier: Tier, slots: list[int], frames: list[int]) -> None:
        rows = self.rows(tier)
        for run, device_frames in slot_runs(slots, frames):
            self.scatter(device_frames, rows[run])

    def gather(self, frames: list[int], out: torch.Tensor | None = None) -> torch.Tensor:
        """Device pages ``frames`` as rows ``[n, page_numel]``, written into ``out`` if given."""
        n = len(frames)
        if out is not None and out.device == self.pool.device and is_run(frames):
            out.view(n, *self.page_shape).copy_(self.page_major[frames[0] : frames[0] + n])
            return out
        index = torch.tensor(frames, dtype=torch.long, device=self.pool.device)
        if out is None or out.device != self.pool.device:
            pages = self.page_major.index_select(0, index).view(n, self.page_numel)
            return pages if out is None else out.copy_(pages)
        torch.index_select(self.page_major, 0, index, out=out.view(n, *self.page_shape))
        return out

    def scatter(self, frames: list[int], rows: torch.Tensor) -> None:
        """Write rows ``[n, page_numel]`` (any device) into device pages ``frames``."""
        n = len(frames)
        pages = rows.to(self.pool.device).view(n, *self.page_shape)
        if is_run(frames):
            self.page_major[frames[0] : frames[0] + n].copy_(pages)
            return
        index = torch.tensor(frames, dtype=torch.long, device=self.pool.device)
        self.pool_pages.index_copy_(3, index, pages.permute(1, 2, 3, 0, 4, 5))

    # -- hibernation: pages out to, and in from, a file ----------------------------

    def read(self, tier: Tier, frames: list[int]) -> torch.Tensor:
        """A copy of pages ``frames`` of ``tier`` as rows ``[n, page_numel]`` on the CPU."""
        if tier is Tier.DEVICE:
            return self.gather(frames).to("cpu")
        if tier is Tier.DISK:
            self._verify(frames)
        return self.rows(tier).index_select(0, torch.tensor(frames, dtype=torch.long))

    def import_pages(self, tier: Tier, frames: list[int], fill: Fill) -> None:
        """Fill ``frames`` of ``tier`` in order: ``fill(buffer)`` writes the next
        ``len(buffer)`` bytes of pages into ``buffer`` (or raises, and the frames hold
        garbage). A consecutive run of swap frames is filled in place, anything else
        through a reused staging buffer, so no buffer of the pages' size is allocated."""
        if tier is not Tier.DEVICE and is_run(frames):
            rows = self.rows(tier)[frames[0] : frames[0] + len(frames)]
            fill(byte_view(rows))
        else:
            step = max(1, MAX_STAGING_BYTES // self.page_bytes)
            for at in range(0, len(frames), step):
                chunk = frames[at : at + step]
                staged = self._staged(len(chunk))
                fill(byte_view(staged))
                self._write(tier, chunk, staged)
        if tier is Tier.DISK:
            self._record(frames)

    def _write(self, tier: Tier, frames: list[int], rows: torch.Tensor) -> None:
        if tier is Tier.DEVICE:
            self.scatter(frames, rows)
        else:
            self.rows(tier).index_put_((torch.tensor(frames, dtype=torch.long),), rows)

    def _staged(self, num_pages: int) -> torch.Tensor:
        if self._staging is None or self._staging.shape[0] < num_pages:
            shape = (num_pages, self.page_numel)
            self._staging = torch.empty(shape, dtype=self.pool.dtype, pin_memory=self.is_cuda)
        return self._staging[:num_pages]

    # -- checksums -----------------------------------------------------------------

    def _crc(self, frame: int) -> int:
        assert self.disk is not None
        return zlib.crc32(byte_view(self.disk[frame]))

    def _record(self, frames: list[int]) -> None:
        for frame in frames:
            self.checksums[frame] = self._crc(frame)

    def _verify(self, frames: list[int]) -> None:
        bad = [frame for frame in frames if self._crc(frame) != self.checksums.get(frame)]
        if bad:
            raise CorruptPage(bad)

    def close(self) -> None:
        """Unmap and delete the swap file (its lock goes with the descriptor)."""
        self.disk = None
        self._release()  # once only: later calls, and the finalizer, do nothing
        self.swap_file = None
        self._fd = None


def release_swap_file(path: Path | None, fd: int | None, owner: int) -> None:
    """Delete a swap file and close its descriptor (and so its lock); only in the process
    that made it, never in a forked child that inherited the object."""
    if os.getpid() != owner:
        return
    if path is not None:
        path.unlink(missing_ok=True)
    if fd is not None:
        os.close(fd)
