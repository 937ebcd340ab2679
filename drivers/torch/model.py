"""A Llama-family causal LM over a paged KV cache (Llama, SmolLM2, Mistral, Qwen2).

Reads top-down: the whole model, then a block, then its parts. Tokens of
every process in a step arrive flat ([T]); the KV pool is handed in by the
caller, never allocated here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llmos.drivers.config import ModelConfig
from llmos.drivers.torch.attention import AttentionMetadata, attend, store_kv
from llmos.drivers.torch.native import FusedOps
from llmos.drivers.torch.rope import RopeBatch, RotaryEmbedding, apply_rotary


class CausalLM(nn.Module):
    """Embeddings, decoder blocks, final norm and the LM head."""

    def __init__(self, config: ModelConfig, max_positions: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.rotary = RotaryEmbedding(config, max_positions or config.max_position_embeddings)
        self.fused: FusedOps | None = None

    def use_fused(self, ops: FusedOps | None) -> None:
        """Run norms, rotary embedding and the KV store through ``ops`` (None: torch ops)."""
        for module in self.modules():
            if isinstance(module, (RMSNorm, Attention)):
                module.fused = ops
        self.fused = ops

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        kv_cache: torch.Tensor,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        """Hidden states [T, D] for input_ids [T] at positions [T].

        ``kv_cache`` is the pool, [layers, 2, kvh, num_slots, head_dim].
        """
        hidden = self.embed_tokens(input_ids)  # [T, D]
        rope = self.rotary.batch(positions, hidden.dtype, need_tables=self.fused is None)
        residual: torch.Tensor | None = None
        for index, layer in enumerate(self.layers):
            hidden, residual = layer(hidden, residual, rope, kv_cache[index], meta)
        assert residual is not None
        return hidden + residual

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits [N, V] (float32) for the rows of hidden [N, D] that need sampling."""
        return self.lm_head(self.norm(hidden)).float()


class Block(nn.Module):
    """Pre-norm attention then pre-norm SwiGLU, each with a residual.

    The residual stream travels beside the hidden states, so each residual add
    happens inside the next norm (one fused op where native kernels run).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self,
        hidden: torch.Tensor,
        residual: torch.Tensor | None,
        rope: RopeBatch,
        layer_cache: torch.Tensor,
        meta: AttentionMetadata,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(this block's MLP output, the residual stream before it); their sum is the
        block's output. ``residual`` None: ``hidden`` is the stream (first block)."""
        if residual is None:
            residual, hidden = hidden, self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm.add_forward(hidden, residual)
        hidden = self.self_attn(hidden, rope, layer_cache, meta)
        hidden, residual = self.post_attention_layernorm.add_forward(hidden, residual)
        return self.mlp(hidden), residual


class Attention(nn.Module):
    """Grouped-query attention with a fused qkv projection."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        q_size = self.num_heads * self.head_dim
        kv_size = self.num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(
            config.hidden_size, q_size + 2 * kv_size, bias=config.attention_bias
        )
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=False)
        self.fused: FusedOps | None = None

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeBatch,
        layer_cache: torch.Tensor,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        num_tokens = x.shape[0]
        qkv = self.qkv_proj(x)  # [T, (h + 2*kvh) * d]
        heads = qkv.view(num_tokens, -1, self.head_dim)  # [T, h + 2*kvh, d]
        num_rotated = self.num_heads + self.num_kv_heads
        if self.fused is not None:  # rotates q and k in place, stores k and v: one call
            self.fused.rope_store(
                qkv, self.num_heads, self.num_kv_heads, rope.tables, rope.positions,
                meta.slot_mapping, layer_cache,
            )  # fmt: skip
            q, k = heads[:, : self.num_heads], heads[:, self.num_heads : num_rotated]
        else:
            assert rope.cos is not None and rope.sin is not None
            rotated = apply_rotary(heads[:, :num_rotated], rope.cos, rope.sin)  # q and k
            q, k = rotated[:, : self.num_heads], rotated[:, self.num_heads :]
            store_kv(k, heads[:, num_rotated:], layer_cache, meta)
        v = heads[:, num_rotated:]
        out = attend(q, k, v, layer_cache, meta)  # [T, h, d]
        return self.o_proj(out.reshape(num_tokens, -1))


class MLP(nn.Module):
    """SwiGLU with a fused gate/up projection."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.intermediate_size, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 as the reference models do."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps
        self.fused: FusedOps | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused.add_rms_norm(x.contiguous(), None, self.weight, self.eps)
        normed = F.rms_norm(x.float(), self.weight.shape, None, self.eps)
        return self.weight * normed.to(x.dtype)

    def add_forward(
        self, delta: torch.Tensor, residual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(norm(residual + delta), residual + delta); the fused path adds in place."""
        if self.fused is not None:
            return self.fused.add_rms_norm(residual, delta, self.weight, self.eps), residual
        residual = residual + delta
        return self(residual), residual
