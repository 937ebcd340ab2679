"""Prompts and workloads of bench/throughput.py, reused by the other scripts.

Prompts are token ids sliced from real English text, so every system gets the
exact same ids and every length is exact. Decoding is greedy with fixed output
lengths (``ignore_eos``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from llmos.syscalls.sampling import SamplingParams

PARAGRAPH = (
    "The history of computing is a story of layers. Early machines were programmed by "
    "rewiring panels, and every job owned the whole computer while it ran. Operating "
    "systems arrived to share that precious hardware: they scheduled programs, gave each "
    "one the illusion of its own memory through paging, and moved data between fast and "
    "slow storage without the programs noticing. Decades later, large language models "
    "face a similar problem. A model's attention cache grows with every token, requests "
    "arrive at random times with prompts of very different lengths, and the accelerator "
    "is most efficient when it works on many sequences at once. Serving systems borrowed "
    "the old ideas: they split the cache into fixed-size pages, admit new requests while "
    "others are still generating, and preempt a sequence when memory runs short, just as "
    "a kernel would swap out a process. The result is that one machine can answer many "
    "more questions per second, while each answer still arrives quickly enough to feel "
    "interactive. Of course, none of this matters if the answers are wrong, so careful "
    "engineers check that batching never changes what a model says."
)


@dataclass(frozen=True)
class Scale:
    """How big each workload is."""

    num_prompts: int = 64
    prompt_len: int = 32
    output_len: int = 128
    varied_prompt: tuple[int, int] = (10, 500)
    varied_output: tuple[int, int] = (16, 256)
    num_sequential: int = 4


SCALES = {
    "full": Scale(),
    "quick": Scale(16, 32, 32, (10, 200), (8, 64), 4),
    "tiny": Scale(4, 16, 8, (10, 40), (4, 8), 2),
}


@dataclass
class Workload:
    """Prompts and the output length requested for each."""

    name: str
    prompts: list[list[int]]
    outputs: list[int]  # requested output length per prompt

    @property
    def useful_tokens(self) -> int:
        """Prompt tokens plus requested output tokens."""
        return sum(len(p) for p in self.prompts) + sum(self.outputs)


def token_pool(tokenizer_json: Path, min_len: int) -> list[int]:
    """Token ids of PARAGRAPH repeated until there are at least ``min_len`` of them."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_json)).encode(PARAGRAPH, add_special_tokens=False).ids
    return ids * (min_len // len(ids) + 1)


def make_workloads(pool: list[int], scale: Scale, seed: int) -> dict[str, Workload]:
    """The ``single``, ``fixed`` and ``varied`` workloads, sliced from ``pool`` (seeded)."""
    rng = random.Random(seed)

    def prompt(length: int) -> list[int]:
        start = rng.randrange(len(pool) - length)
        return pool[start : start + length]

    n, plen, olen = scale.num_prompts, scale.prompt_len, scale.output_len
    varied_p = [rng.randint(*scale.varied_prompt) for _ in range(n)]
    varied_o = [rng.randint(*scale.varied_output) for _ in range(n)]
    return {
        "single": Workload("single", [prompt(plen)], [olen]),
        "fixed": Workload("fixed", [prompt(plen) for _ in range(n)], [olen] * n),
        "varied": Workload("varied", [prompt(p) for p in varied_p], varied_o),
    }


def greedy(max_tokens: int) -> SamplingParams:
    """Greedy sampling of exactly ``max_tokens`` tokens."""
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
