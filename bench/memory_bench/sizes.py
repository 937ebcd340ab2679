"""How big and how often each section of bench/memory.py runs, by scale."""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SIZE = 16


@dataclass(frozen=True)
class Sizes:
    """How big and how often each section runs."""

    fork_lengths: tuple[int, ...]
    fork_headline: int  # the length the < 1 ms target is about
    num_forks: int
    num_copies: int  # repeats of the (large) copy baselines
    cow_context: int
    num_children: int
    cow_decode: int  # tokens each child decodes before frames are counted
    swap_tokens: int
    num_swaps: int
    workload: str  # a harness/workloads.py scale for the varied workload
    num_runs: int  # interleaved runs of each workload per prefix-cache setting
    system_prompt: int
    num_shared: int
    user_prompt: tuple[int, int]
    shared_output: int


SIZES = {
    "full": Sizes((500, 1000, 2000, 4000), 2000, 200, 20, 1000, 8, 4, 1700, 10, "full", 3,
                  1000, 16, (20, 60), 32),
    "quick": Sizes((500, 1000, 2000), 2000, 50, 5, 1000, 8, 4, 1700, 5, "quick", 2,
                   500, 8, (20, 60), 16),
    "tiny": Sizes((32, 64, 128), 128, 20, 3, 100, 8, 4, 100, 3, "tiny", 1,
                  64, 4, (8, 16), 4),
}  # fmt: skip
