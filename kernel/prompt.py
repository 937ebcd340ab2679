"""Turning a prompt — text, token ids or chat messages — into token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos.syscalls.errors import InvalidArgument

Prompt = str | Sequence[int] | Sequence[dict[str, str]]


def tokenize_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt; chat messages go through the model's chat template."""
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt))
    items: list[Any] = list(prompt)
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return _checked_ids(items, int(tokenizer.vocab_size))
    if all(isinstance(item, dict) for item in items):
        text = tokenizer.apply_chat_template(items, add_generation_prompt=True)
        return list(tokenizer.encode(text, add_special_tokens=False))
    raise InvalidArgument("a prompt is a string, a list of token ids, or a list of chat messages")


def _checked_ids(ids: list[int], vocab_size: int) -> list[int]:
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise InvalidArgument(f"token ids out of range [0, {vocab_size}): {bad[:5]}")
    return ids
