"""Check that a checkpoint has every tensor its config implies, in the right shape.

Loaders call this so a truncated or mismatched model fails at load time with a
message naming the tensor, not later inside a matmul.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from llmos.drivers.config import ModelConfig
from llmos.syscalls.errors import BadModelFile


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> shape for a Llama-family model described by ``config``."""
    hidden, inter = config.hidden_size, config.intermediate_size
    q_rows = config.num_attention_heads * config.head_dim
    kv_rows = config.num_key_value_heads * config.head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config.vocab_size, hidden),
        "model.norm.weight": (hidden,),
    }
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, hidden)
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}."
        parts = {
            "self_attn.q_proj.weight": (q_rows, hidden),
            "self_attn.k_proj.weight": (kv_rows, hidden),
            "self_attn.v_proj.weight": (kv_rows, hidden),
            "self_attn.o_proj.weight": (hidden, q_rows),
            "input_layernorm.weight": (hidden,),
            "post_attention_layernorm.weight": (hidden,),
            "mlp.gate_proj.weight": (inter, hidden),
            "mlp.up_proj.weight": (inter, hidden),
            "mlp.down_proj.weight": (hidden, inter),
        }
        if config.attention_bias:
            parts.update(
                {
                    "self_attn.q_proj.bias": (q_rows,),
                    "self_attn.k_proj.bias": (kv_rows,),
                    "self_attn.v_proj.bias": (kv_rows,),
                }
            )
        shapes.update({prefix + name: shape for name, shape in parts.items()})
    return shapes


def check_tensors(tensors: Mapping[str, torch.Tensor], config: ModelConfig, source: Path) -> None:
    """Raise :class:`BadModelFile` if a tensor is missing or has the wrong shape."""
    expected = expected_shapes(config)
    missing = [name for name in expected if name not in tensors]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise BadModelFile(f"{source} lacks tensors: {shown}")
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            got = tuple(tensors[name].shape)
            raise BadModelFile(f"{source}: tensor {name} has shape {got}, config implies {shape}")
