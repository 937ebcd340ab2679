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
    items = list(prompt)
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        vocab = tokenizer.vocab_size
        bad = [t for t in items if not 0 <= t < vocab]
        if bad:
            raise InvalidArgument(f"token ids out of range [0, {vocab}): {bad[:5]}")
        return [int(t) for t in items]
    if all(isinstance(item, dict) for item in items):
        text = tokenizer.apply_chat_template(items, add_generation_prompt=True)
        return list(tokenizer.encode(text, add_special_tokens=False))
    raise InvalidArgument("a prompt is a string, a list of token ids, or a list of chat messages")
