"""Incremental detokenization: turn a stream of token ids into a stream of text.

Decoding one token at a time is wrong twice over: a byte-level token can hold
half a UTF-8 character, and SentencePiece decoders drop the leading space of a
sequence's first piece. So each step decodes a short window -- the tokens
already emitted last time plus the new ones -- and emits only the text past
what that window's prefix decoded to, holding back text that ends in U+FFFD
(an unfinished character).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from llmos.drivers.tokenizer import Tokenizer

REPLACEMENT_CHAR = "\ufffd"
# A UTF-8 character is at most 4 bytes and every token adds at least one, so
# after this many held tokens a trailing U+FFFD is a real invalid byte, not a
# character still arriving; emit it rather than hold text back forever.
MAX_HELD_TOKENS = 6
# Prompt tokens kept as left context so the first generated piece decodes
# with the spacing it has inside the sequence.
CONTEXT_TOKENS = 4


class IncrementalDetokenizer:
    """Feed ids one at a time with :meth:`feed`; call :meth:`flush` at the end.

    ``context_ids`` (usually the prompt) only give the first tokens their
    left context; their text is never emitted.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        context_ids: Sequence[int] = (),
        skip_special_tokens: bool = True,
    ) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: list[int] = [int(i) for i in context_ids[-CONTEXT_TOKENS:]]
        self._prefix_offset = 0  # start of the decode window
        self._read_offset = len(self._ids)  # ids before this have been emitted

    def get_state(self) -> tuple[list[int], int, int]:
        """The window of ids and its two offsets, to store with a hibernated process."""
        return list(self._ids), self._prefix_offset, self._read_offset

    def set_state(self, state: tuple[list[int], int, int]) -> None:
        """Restore :meth:`get_state`: text held back before hibernation is not lost."""
        ids, self._prefix_offset, self._read_offset = state
        self._ids = [int(i) for i in ids]

    def fork(self) -> IncrementalDetokenizer:
        """An independent copy in the same state (for a forked process)."""
        twin = copy.copy(self)
        twin._ids = list(self._ids)
        return twin

    def _decode(self, start: int, end: int | None = None) -> str:
        return self._tokenizer.decode(self._ids[start:end], skip_special_tokens=self._skip_special)

    def feed(self, token_id: int) -> str:
        """Add one generated id; return the text it completes (maybe ``""``)."""
        self._ids.append(int(token_id))
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        full_text = self._decode(self._prefix_offset)
        held = len(self._ids) - self._read_offset
        if full_text.endswith(REPLACEMENT_CHAR) and held < MAX_HELD_TOKENS:
            return ""
        if len(full_text) <= len(prefix_text):
            return ""  # e.g. a skipped special token: nothing new yet
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return full_text[len(prefix_text) :]

    def flush(self) -> str:
        """Return whatever is still held back (an unfinished character decodes as U+FFFD)."""
        prefix_text = self._decode(self._prefix_offset, self._read_offset)
        full_text = self._decode(self._prefix_offset)
        self._prefix_offset = self._read_offset = len(self._ids)
        return full_text[len(prefix_text) :]
