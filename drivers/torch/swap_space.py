"""Swap space: the host and disk tiers of the KV cache, and the copies between tiers.

Both tiers are page-major: row ``f`` is one whole page (every layer's K and
V), so a page moves as one contiguous row and the disk tier can checksum
it. The host tier is a tensor in RAM (pinned when the device is CUDA); the
disk tier is a file mapped into memory, one CRC-32 per written page. The
device pool keeps its own layout ``[layers, 2, kv_heads, slots, head_dim]``;
a move gathers or scatters pages of it with one indexed copy.
"""

from __future__ import annotations

import itertools
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch

from llmos.syscalls.errors import LlmosError
from llmos.syscalls.tiers import Move, Tier

_SWAP_FILES = itertools.count(1)
MAX_DISK_SHARE = 0.5  # the swap file never takes more than this share of free disk


def swap_file_path(data_dir: Path) -> Path:
    """A swap file of its own for one driver of this kernel, under the data dir."""
    return data_dir / "swap" / f"{os.getpid()}-{next(_SWAP_FILES)}.swap"


class CorruptPage(LlmosError):
    """A page read back from the swap file does not match its checksum."""

    code = "EIO"

    def __init__(self, frames: list[int]) -> None:
        super().__init__(f"swap pages {frames} failed their checksum")
        self.frames = frames


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
        pin = pool.device.type == "cuda"
        # empty, not zeros: the OS commits host pages only as they are written
        self.host = torch.empty((num_host_pages, self.page_numel), dtype=pool.dtype, pin_memory=pin)
        self.swap_file = swap_file if num_disk_pages else None
        self.disk = self._map(swap_file, num_disk_pages) if num_disk_pages else None
        self.checksums: dict[int, int] = {}

    def _map(self, path: Path | None, num_pages: int) -> torch.Tensor:
        assert path is not None, "a disk tier needs a swap file path"
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        num_pages = max(1, min(num_pages, int(free * MAX_DISK_SHARE) // self.page_bytes))
        with open(path, "a+b") as handle:  # sparse: disk is used only as pages are written
            os.truncate(handle.fileno(), num_pages * self.page_bytes)
        mapped = torch.from_file(
            str(path), shared=True, size=num_pages * self.page_bytes, dtype=torch.uint8
        )
        return mapped.view(num_pages, self.page_bytes)

    @property
    def pool_pages(self) -> torch.Tensor:
        """The device pool viewed as ``[layers, 2, kv_heads, pages, page_size, head_dim]``."""
        layers, two, heads, slots, dim = self.pool.shape
        return self.pool.view(layers, two, heads, slots // self.page_size, self.page_size, dim)

    @torch.inference_mode()
    def move(self, moves: list[Move]) -> list[int]:
        """Carry out ``moves`` in order, one batched copy each; return the pids whose
        pages failed their checksum (those moves are skipped, the rest go on)."""
        corrupt: list[int] = []
        for move in moves:
            try:
                rows = self.read(move.src, move.src_frames)
            except CorruptPage:
                corrupt.append(move.pid)
                continue
            self.write(move.dst, move.dst_frames, rows)
        return corrupt

    def read(self, tier: Tier, frames: list[int]) -> torch.Tensor:
        """Pages ``frames`` of ``tier`` as rows ``[n, page_numel]`` (on its own device)."""
        index = torch.tensor(frames, dtype=torch.long)
        if tier is Tier.DEVICE:
            gathered = self.pool_pages.index_select(3, index.to(self.pool.device))
            return gathered.permute(3, 0, 1, 2, 4, 5).reshape(len(frames), self.page_numel)
        if tier is Tier.HOST:
            return self.host.index_select(0, index)
        assert self.disk is not None
        raw = self.disk.index_select(0, index)
        self._verify(frames, raw)
        return raw.view(self.pool.dtype).view(len(frames), self.page_numel)

    def write(self, tier: Tier, frames: list[int], rows: torch.Tensor) -> None:
        index = torch.tensor(frames, dtype=torch.long)
        if tier is Tier.DEVICE:
            pages = rows.to(self.pool.device, non_blocking=True).view(len(frames), *self.page_shape)
            self.pool_pages.index_copy_(
                3, index.to(self.pool.device), pages.permute(1, 2, 3, 0, 4, 5)
            )
        elif tier is Tier.HOST:
            self.host.index_copy_(0, index, rows.to("cpu"))
        else:
            assert self.disk is not None
            raw = rows.to("cpu").contiguous().view(torch.uint8).view(len(frames), self.page_bytes)
            self.disk.index_copy_(0, index, raw)
            self._record(frames, raw)

    def _record(self, frames: list[int], raw: torch.Tensor) -> None:
        array = raw.numpy()
        for row, frame in enumerate(frames):
            self.checksums[frame] = zlib.crc32(memoryview(array[row]))

    def _verify(self, frames: list[int], raw: torch.Tensor) -> None:
        array: np.ndarray = raw.numpy()
        bad = [
            frame
            for row, frame in enumerate(frames)
            if zlib.crc32(memoryview(array[row])) != self.checksums.get(frame)
        ]
        if bad:
            raise CorruptPage(bad)

    def close(self) -> None:
        """Unmap and delete the swap file."""
        self.disk = None
        if self.swap_file is not None:
            self.swap_file.unlink(missing_ok=True)
            self.swap_file = None
