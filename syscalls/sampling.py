"""Sampling parameters of one process: part of the ABI, shared by kernel and drivers."""

from __future__ import annotations

import msgspec

from llmos.syscalls.errors import InvalidArgument


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """How a process picks its next token and when it stops.

    ``temperature == 0`` is greedy. ``top_k == 0``, ``top_p == 1`` and
    ``min_p == 0`` disable those filters. ``seed`` makes sampling
    reproducible per process (same seed, same text).
    """

    max_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    stop_token_ids: list[int] = msgspec.field(default_factory=list)
    ignore_eos: bool = False

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    def validate(self) -> SamplingParams:
        """Raise :class:`InvalidArgument` on any out-of-range field; return self."""
        checks = [
            (self.max_tokens >= 1, f"max_tokens must be >= 1, got {self.max_tokens}"),
            (self.temperature >= 0.0, f"temperature must be >= 0, got {self.temperature}"),
            (self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}"),
            (0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}"),
            (0.0 <= self.min_p <= 1.0, f"min_p must be in [0, 1], got {self.min_p}"),
            (
                self.repetition_penalty > 0.0,
                f"repetition_penalty must be > 0, got {self.repetition_penalty}",
            ),
            (all(s for s in self.stop), "stop strings must be non-empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidArgument(message)
        return self
