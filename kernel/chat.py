"""The next turn of a chat process: which tokens to append so earlier turns are not recomputed.

The conversation is rendered again with the new user message; the part past
what the process already holds is the new turn. Text is compared first (the
usual case: the template renders the earlier turns exactly as they were
generated); otherwise tokens are compared and the process keeps the longest
common prefix (its K/V stays valid), recomputing only the rest.
"""

from __future__ import annotations

from typing import Any

from llmos.kernel.prompt import Prompt
from llmos.syscalls.errors import InvalidArgument


def next_turn(
    tokenizer: Any, token_ids: list[int], messages: list[dict[str, str]], content: str
) -> tuple[int, list[int]]:
    """(tokens of ``token_ids`` to keep, tokens to append) for the user turn ``content``."""
    conversation = [*messages, {"role": "user", "content": content}]
    rendered: str = tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
    held: str = tokenizer.decode(token_ids, skip_special_tokens=False)
    if rendered.startswith(held):
        delta = rendered[len(held) :]
        return len(token_ids), list(tokenizer.encode(delta, add_special_tokens=False))
    full = list(tokenizer.encode(rendered, add_special_tokens=False))
    keep = common_prefix(token_ids, full)
    return keep, full[keep:]


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    size = min(len(a), len(b))
    for index in range(size):
        if a[index] != b[index]:
            return index
    return size


def chat_history(prompt: Prompt) -> list[dict[str, str]]:
    """The conversation so far of a chat process's first prompt."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    items: list[Any] = list(prompt)
    if all(isinstance(item, dict) for item in items):
        return [{str(k): str(v) for k, v in item.items()} for item in items]
    raise InvalidArgument("a chat process starts from chat messages or a string, not token ids")
