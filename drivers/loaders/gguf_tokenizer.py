"""Build a :class:`Tokenizer` from GGUF ``tokenizer.*`` metadata.

Two vocabulary kinds cover llama, mistral and qwen2 files:

* ``tokenizer.ggml.model == "gpt2"``: byte-level BPE. Tokens are already spelled
  in GPT-2's byte alphabet and merges are listed; ``tokenizer.ggml.pre`` names
  how text is split before BPE.
* ``"llama"``: SentencePiece BPE. Tokens carry scores instead of merges, words
  start with U+2581, and bytes outside the vocabulary fall back to ``<0xNN>``.

Tokens typed control (3) become special tokens and user-defined (4) plain added
tokens, so ``<|im_start|>`` in a prompt is one id, as in llama.cpp.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from llmos.drivers.loaders.gguf_config import gguf_eos_ids
from llmos.drivers.tokenizer import Tokenizer
from llmos.syscalls.errors import BadModelFile

log = logging.getLogger(__name__)

TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
SPIECE_UNDERLINE = "\u2581"

# Split patterns of the pre-tokenizers llama.cpp knows by name (tokenizer.ggml.pre).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PATTERNS = {
    "llama-bpe": _LLAMA3_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}
# These split every digit on its own, then apply GPT-2's pattern.
_DIGIT_SPLIT = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "minerva"})
_GPT2_STYLE = frozenset({"default", "gpt2", "gpt-2"})


def tokenizer_from_gguf(metadata: Mapping[str, Any]) -> Tokenizer:
    """The tokenizer a GGUF file describes; unsupported kinds are :class:`BadModelFile`."""
    kind = metadata.get("tokenizer.ggml.model")
    if kind not in ("gpt2", "llama"):
        raise BadModelFile(f"unsupported GGUF tokenizer model {kind!r} (need gpt2 or llama)")
    tokens = _string_list(metadata, "tokenizer.ggml.tokens")
    if kind == "gpt2":
        backend = _byte_level_bpe(metadata, tokens)
    else:
        backend = _sentencepiece_bpe(metadata, tokens)
    # llama.cpp adds BOS to SentencePiece vocabularies unless the file says otherwise.
    add_bos_default = kind == "llama"
    _add_typed_tokens(backend, tokens, metadata.get("tokenizer.ggml.token_type") or [])
    return Tokenizer(
        backend,
        bos_token=_token_at(tokens, metadata.get("tokenizer.ggml.bos_token_id")),
        eos_token=_token_at(tokens, metadata.get("tokenizer.ggml.eos_token_id")),
        add_bos_token=bool(metadata.get("tokenizer.ggml.add_bos_token", add_bos_default)),
        chat_template=_chat_template(metadata),
        extra_eos_ids=gguf_eos_ids(metadata),
    )


def _byte_level_bpe(metadata: Mapping[str, Any], tokens: list[str]) -> tokenizers.Tokenizer:
    merges = [tuple(m.split(" ", 1)) for m in _string_list(metadata, "tokenizer.ggml.merges")]
    if any(len(m) != 2 for m in merges):
        raise BadModelFile("GGUF tokenizer.ggml.merges has an entry that is not a pair")
    backend = _bpe(_vocab(tokens), merges)
    backend.pre_tokenizer = _byte_level_pre_tokenizer(metadata.get("tokenizer.ggml.pre"))
    backend.decoder = decoders.ByteLevel()
    return backend


def _byte_level_pre_tokenizer(pre: object) -> pre_tokenizers.PreTokenizer:
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _SPLIT_PATTERNS:
        split = pre_tokenizers.Split(Regex(_SPLIT_PATTERNS[str(pre)]), behavior="isolated")
        no_regex = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        return pre_tokenizers.Sequence([split, no_regex])
    if pre in _DIGIT_SPLIT:
        digits = pre_tokenizers.Digits(individual_digits=True)
        return pre_tokenizers.Sequence([digits, byte_level])
    if pre is not None and pre not in _GPT2_STYLE:
        log.warning("unknown GGUF pre-tokenizer %r; splitting text the GPT-2 way", pre)
    return byte_level


def _sentencepiece_bpe(metadata: Mapping[str, Any], tokens: list[str]) -> tokenizers.Tokenizer:
    scores = metadata.get("tokenizer.ggml.scores")
    if scores is None or len(scores) != len(tokens):
        raise BadModelFile("GGUF SentencePiece vocabulary needs one score per token")
    vocab = _vocab(tokens)
    unk = _token_at(tokens, metadata.get("tokenizer.ggml.unknown_token_id"))
    backend = _bpe(vocab, merges_from_scores(vocab, scores), unk_token=unk, byte_fallback=True)
    add_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPIECE_UNDERLINE, prepend_scheme="first" if add_prefix else "never", split=False
    )
    steps = [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        steps.append(decoders.Strip(" ", 1, 0))  # drop the space the prefix added
    backend.decoder = decoders.Sequence(steps)
    return backend


def merges_from_scores(vocab: Mapping[str, int], scores: Sequence[float]) -> list[tuple[str, str]]:
    """Recover BPE merges from a SentencePiece vocabulary: every way to build a token
    from two shorter tokens is a merge, ranked by the built token's score (higher
    first), ties broken toward longer pieces, then vocabulary order."""
    found = []
    for token, token_id in vocab.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                rank = (-float(scores[token_id]), -len(left), -len(right), token_id)
                found.append((*rank, left, right))
    found.sort()
    return [(left, right) for *_, left, right in found]


def _bpe(vocab: dict[str, int], merges: list[Any], **options: Any) -> tokenizers.Tokenizer:
    try:
        return tokenizers.Tokenizer(
            models.BPE(vocab=vocab, merges=merges, fuse_unk=True, **options)
        )
    except Exception as exc:  # the Rust side raises plain Exception
        raise BadModelFile(f"GGUF vocabulary does not form a BPE tokenizer: {exc}") from exc


def _vocab(tokens: list[str]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)  # a duplicated spelling keeps its first id
    return vocab


def _add_typed_tokens(
    backend: tokenizers.Tokenizer, tokens: list[str], types: Sequence[int]
) -> None:
    special = [t for t, kind in zip(tokens, types, strict=False) if kind == TOKEN_TYPE_CONTROL]
    added = [t for t, kind in zip(tokens, types, strict=False) if kind == TOKEN_TYPE_USER_DEFINED]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])


def _chat_template(metadata: Mapping[str, Any]) -> str | None:
    template = metadata.get("tokenizer.chat_template")
    return template if isinstance(template, str) else None


def _string_list(metadata: Mapping[str, Any], key: str) -> list[str]:
    value = metadata.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadModelFile(f"GGUF metadata {key} is missing or not a list of strings")
    return value


def _token_at(tokens: list[str], token_id: object) -> str | None:
    if token_id is None:
        return None
    if not isinstance(token_id, int) or not 0 <= token_id < len(tokens):
        raise BadModelFile(f"GGUF special token id {token_id!r} is outside the vocabulary")
    return tokens[token_id]
