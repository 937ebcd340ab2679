"""Load a GGUF file: metadata -> config and tokenizer, tensors dequantized to HF names.

Dequantization is gguf's own (``gguf.quants.dequantize``), so every type it
knows (F32, F16, BF16, Q8_0, Q4_0, Q4_1, K-quants...) loads, as float32. This is
slow for big files; :mod:`llmos.drivers.loaders.cache` keeps the result.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from llmos.drivers.config import ModelConfig
from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.loaders.gguf_config import (
    PERMUTED_QK_ARCHITECTURES,
    gguf_architecture,
    hf_config_from_gguf,
)
from llmos.drivers.loaders.gguf_tokenizer import tokenizer_from_gguf
from llmos.drivers.loaders.validate import check_tensors
from llmos.drivers.tokenizer import Tokenizer
from llmos.syscalls.errors import BadModelFile

# What a malformed file makes GGUFReader or the dequantizer raise.
_READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, struct.error, OverflowError, OSError)

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_PARTS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
ROPE_FREQS = "rope_freqs.weight"
_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def load_gguf(path: Path, name: str | None = None) -> Checkpoint:
    """Read and dequantize a whole GGUF file into a float32 :class:`Checkpoint`."""
    path = Path(path)
    reader = open_gguf(path)
    metadata = read_metadata(reader, path)
    arch = gguf_architecture(metadata)
    by_name = {t.name: t for t in reader.tensors}
    rope_freqs = by_name.pop(ROPE_FREQS, None)  # Llama 3 rope scaling, not a weight
    raw = {_hf_name(name): t for name, t in by_name.items()}
    if "model.embed_tokens.weight" not in raw:
        raise BadModelFile(f"{path} has no token_embd.weight tensor")
    with _malformed_metadata(path):
        hf_config = hf_config_from_gguf(
            metadata,
            vocab_size=int(raw["model.embed_tokens.weight"].shape[-1]),
            has_output="lm_head.weight" in raw,
            has_qkv_bias="model.layers.0.self_attn.q_proj.bias" in raw,
            rope_factors=None if rope_freqs is None else _dequantize(rope_freqs, path).numpy(),
        )
        tokenizer = tokenizer_from_gguf(metadata)  # before the slow part, to fail early
    config = ModelConfig.from_hf(hf_config)
    tensors = {hf: _dequantize(t, path) for hf, t in raw.items()}
    check_tensors(tensors, config, path)
    if arch in PERMUTED_QK_ARCHITECTURES:
        _unpermute_qk(tensors, config)
    return Checkpoint(
        name=name or path.stem, source=path, config=config, tensors=tensors, tokenizer=tokenizer
    )


def load_gguf_tokenizer(path: Path) -> Tokenizer:
    """Only the tokenizer of a GGUF file (reads metadata, not tensors)."""
    path = Path(path)
    metadata = read_metadata(open_gguf(path), path)
    with _malformed_metadata(path):
        return tokenizer_from_gguf(metadata)


@contextmanager
def _malformed_metadata(path: Path) -> Iterator[None]:
    """Metadata of the wrong type (a string where a count belongs) is a bad file."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, ArithmeticError) as exc:
        raise BadModelFile(f"{path} has malformed GGUF metadata: {exc}") from exc


def open_gguf(path: Path) -> gguf.GGUFReader:
    """Open ``path`` with GGUFReader; any parse failure is :class:`BadModelFile`."""
    if not path.is_file():
        raise BadModelFile(f"{path} does not exist or is not a file")
    try:
        return gguf.GGUFReader(path)
    except _READ_ERRORS as exc:
        raise BadModelFile(f"{path} is not a valid GGUF file: {exc}") from exc


def read_metadata(reader: gguf.GGUFReader, path: Path) -> dict[str, Any]:
    """Every key-value field, decoded to Python values (strings, numbers, lists)."""
    try:
        return {key: field.contents() for key, field in reader.fields.items()}
    except (*_READ_ERRORS, UnicodeDecodeError) as exc:
        raise BadModelFile(f"{path} has unreadable GGUF metadata: {exc}") from exc


def _hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK_NAME.fullmatch(gguf_name)
    if match is None or match.group(2) not in _BLOCK_PARTS:
        raise BadModelFile(f"GGUF tensor {gguf_name!r} is not part of a supported model")
    layer, part, kind = match.groups()
    return f"model.layers.{layer}.{_BLOCK_PARTS[part]}.{kind}"


def _dequantize(tensor: Any, path: Path) -> torch.Tensor:
    # GGUF lists dimensions fastest-first (ne[0] = row length); torch wants them reversed.
    shape = tuple(int(n) for n in reversed(tensor.shape))
    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        # Copy: an F32 result is a read-only view of the memory-mapped file.
        array = np.array(values, dtype=np.float32).reshape(shape)
    except NotImplementedError as exc:
        kind = getattr(tensor.tensor_type, "name", tensor.tensor_type)
        raise BadModelFile(f"{path}: tensor {tensor.name} has unsupported type {kind}") from exc
    except _READ_ERRORS as exc:
        raise BadModelFile(f"{path}: tensor {tensor.name} is truncated or corrupt: {exc}") from exc
    return torch.from_numpy(array)


def _unpermute_qk(tensors: dict[str, torch.Tensor], config: ModelConfig) -> None:
    """Undo llama.cpp's q/k row permutation.

    llama.cpp's converter reorders each head's rows from HF's rotate-half layout
    (first half, second half) to interleaved pairs, as its RoPE kernel expects.
    Viewing a head's rows as (head_dim // 2, 2) and transposing restores them.
    """
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    for layer in range(config.num_hidden_layers):
        for proj, num_heads in heads.items():
            for kind in ("weight", "bias"):
                key = f"model.layers.{layer}.self_attn.{proj}.{kind}"
                if key in tensors:
                    tensors[key] = _unpermute_rows(tensors[key], num_heads)


def _unpermute_rows(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    rows, rest = weight.shape[0], weight.shape[1:]
    if rows % (2 * num_heads):
        raise BadModelFile(f"q/k tensor with {rows} rows does not split into {num_heads} heads")
    # [heads, head_dim/2, 2, ...] -> [heads, 2, head_dim/2, ...] -> [rows, ...]
    per_head = weight.reshape(num_heads, rows // num_heads // 2, 2, *rest)
    return per_head.transpose(1, 2).reshape(rows, *rest).contiguous()
