"""Memory tiers and the page moves between them.

Part of the ABI (page maps name tiers). The memory manager decides moves
(plain Python, frame numbers only); the driver carries them out, one batched
copy per move, in the order recorded, before the step that needs them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Tier(enum.Enum):
    """Where a page's K/V lives."""

    DEVICE = "device"  # the KV pool the model reads (GPU memory, or RAM on the CPU)
    HOST = "host"  # swap in host RAM (pinned on CUDA)
    DISK = "disk"  # a memory-mapped swap file, checksummed per page


@dataclass(frozen=True)
class Move:
    """Copy pages ``src_frames`` of tier ``src`` into ``dst_frames`` of tier ``dst``."""

    src: Tier
    dst: Tier
    src_frames: list[int]
    dst_frames: list[int]
    pid: int = 0  # whose pages these are (0: the cache's, or shared)

    def __post_init__(self) -> None:
        assert len(self.src_frames) == len(self.dst_frames)

    @property
    def num_pages(self) -> int:
        return len(self.src_frames)
