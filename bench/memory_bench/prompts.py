"""Prompts that share no cached page unless built to."""

from __future__ import annotations

import itertools
import random


class Prompts:
    """Token ids sliced from real text, each opened by a two-token tag used once per run,
    so no two prompts share a cached page unless built to."""

    def __init__(self, pool: list[int], vocab_size: int, seed: int) -> None:
        self.pool = pool
        self.rng = random.Random(seed)
        self.base = vocab_size - 3  # ids 0-2 are special tokens in both models
        self.tags = itertools.count()

    def tag(self) -> list[int]:
        """The next two-token tag."""
        n = next(self.tags)
        return [3 + n % self.base, 3 + n // self.base % self.base]

    def make(self, length: int) -> list[int]:
        """A fresh tagged prompt of ``length`` tokens."""
        start = self.rng.randrange(len(self.pool) - length)
        return self.retag(self.pool[start : start + length])

    def retag(self, prompt: list[int]) -> list[int]:
        """``prompt`` with its first two tokens replaced by a fresh tag."""
        return (self.tag() + prompt[2:])[: len(prompt)]
