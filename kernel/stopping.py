"""Stop conditions: stop tokens, stop strings, max tokens and the context limit."""

from __future__ import annotations

from llmos.kernel.process import ExitStatus, Process
from llmos.syscalls.sampling import SamplingParams


def stop_token_ids(params: SamplingParams, eos_token_ids: list[int]) -> frozenset[int]:
    """The token ids that end a process with these parameters."""
    ids = set(params.stop_token_ids)
    if not params.ignore_eos:
        ids.update(eos_token_ids)
    return frozenset(ids)


def find_stop_string(text: str, delta: str, stops: list[str]) -> int | None:
    """Index in ``text + delta`` where the earliest stop string begins, if one ends in delta."""
    if not stops or not delta:
        return None
    combined = text + delta
    longest = max(len(stop) for stop in stops)
    search_from = max(0, len(text) - longest + 1)
    hits = [combined.find(stop, search_from) for stop in stops]
    found = [hit for hit in hits if hit >= 0]
    return min(found) if found else None


def length_exit(process: Process, max_model_len: int) -> ExitStatus | None:
    """LENGTH once max_tokens are generated (this turn) or the context is full."""
    if process.num_turn_generated >= process.params.max_tokens:
        return ExitStatus.LENGTH
    if process.num_tokens >= max_model_len:
        return ExitStatus.LENGTH
    return None


def held_back(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``text`` that could begin a stop string.

    Streamed text stops short of it, so a stop string is never half-sent.
    """
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
