"""Text helpers the task plugins share: sentences, chunks, code fences, word limits."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def sentences(text: str) -> list[str]:
    """``text`` split after sentence-ending punctuation; blank pieces dropped."""
    return [piece.strip() for piece in _SENTENCE_END.split(text.strip()) if piece.strip()]


def chunks(text: str, max_chars: int) -> list[str]:
    """Whole sentences packed into chunks of at most ``max_chars`` (a longer sentence
    is a chunk of its own)."""
    packed: list[str] = []
    for sentence in sentences(text):
        if packed and len(packed[-1]) + 1 + len(sentence) <= max_chars:
            packed[-1] += " " + sentence
        else:
            packed.append(sentence)
    return packed


def strip_fences(text: str) -> str:
    """The code inside the first Markdown code fence, or ``text`` itself if none."""
    match = _FENCE.search(text)
    return (match.group(2) if match else text).strip("\n")


def limit_words(text: str, max_words: int) -> str:
    """At most ``max_words`` words of ``text``, ending at a sentence end when one is near."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(mark) for mark in ".!?")
    return cut[: end + 1] if end > len(cut) // 2 else cut + "…"
