"""Paged attention, torch reference path.

Every step's batch is flat: ``T`` new tokens from several processes, decode
tokens first, then prefill chunks. Each layer writes its new K/V into the
page pool through ``slot_mapping`` and then reads each process's whole
context back through its block table (already flattened to slot indices).
Decodes run as one padded batch; prefill chunks run one process at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PrefillChunk:
    """One process's prefill chunk inside the flat batch."""

    start: int  # first row in the flat batch
    num_tokens: int
    context_slots: torch.Tensor | None  # [ctx] slots incl. this chunk; None: no earlier context
    mask: torch.Tensor | None  # [1, 1, n, ctx] bool, True = may attend; None: plain causal


@dataclass
class AttentionMetadata:
    """Where a step's tokens go and what each of them may read."""

    slot_mapping: torch.Tensor  # [T] flat slot of every new token
    num_decodes: int  # rows 0..num_decodes-1 are single decode tokens
    decode_slots: torch.Tensor | None  # [Bd, L] context slots, padded with a valid slot
    decode_mask: torch.Tensor | None  # [Bd, 1, 1, L] bool
    prefills: list[PrefillChunk]


def paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: AttentionMetadata,
) -> torch.Tensor:
    """Attend q [T, h, d] over each row's paged context; k/v [T, kvh, d] are stored first.

    ``k_cache``/``v_cache`` are one layer's pool, [num_slots, kvh, d].
    Returns [T, h, d].
    """
    k_cache.index_copy_(0, meta.slot_mapping, k)
    v_cache.index_copy_(0, meta.slot_mapping, v)
    out = torch.empty_like(q)
    num_decodes = meta.num_decodes
    if num_decodes:
        assert meta.decode_slots is not None and meta.decode_mask is not None
        out[:num_decodes] = _decode(
            q[:num_decodes], k_cache, v_cache, meta.decode_slots, meta.decode_mask
        )
    for chunk in meta.prefills:
        rows = slice(chunk.start, chunk.start + chunk.num_tokens)
        out[rows] = _prefill(q[rows], k[rows], v[rows], k_cache, v_cache, chunk)
    return out


def _decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    batch, length = slots.shape
    num_heads, head_dim = q.shape[1], q.shape[2]
    num_kv_heads = k_cache.shape[1]
    flat = slots.reshape(-1)
    keys = k_cache.index_select(0, flat).view(batch, length, num_kv_heads, head_dim)
    values = v_cache.index_select(0, flat).view(batch, length, num_kv_heads, head_dim)
    keys, values = keys.transpose(1, 2), values.transpose(1, 2)  # [B, kvh, L, d]
    if q.dtype == torch.float32:
        out = F.scaled_dot_product_attention(
            q.unsqueeze(2), keys, values, attn_mask=mask, enable_gqa=True
        )  # [B, h, 1, d]
        return out.view(batch, num_heads, head_dim)
    # Reduced precision: grouped matmuls beat the fused CPU kernel here; softmax in float32.
    groups = num_heads // num_kv_heads
    grouped_q = q.view(batch, num_kv_heads, groups, head_dim)
    scores = torch.matmul(grouped_q, keys.transpose(-1, -2)) * head_dim**-0.5  # [B, kvh, g, L]
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.float().softmax(dim=-1).to(q.dtype)
    return torch.matmul(probs, values).view(batch, num_heads, head_dim)


def _prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    chunk: PrefillChunk,
) -> torch.Tensor:
    if chunk.context_slots is None:
        keys, values = k, v  # [n, kvh, d]: the chunk is the whole context
    else:
        keys = k_cache.index_select(0, chunk.context_slots)
        values = v_cache.index_select(0, chunk.context_slots)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1).unsqueeze(0),  # [1, h, n, d]
        keys.transpose(0, 1).unsqueeze(0),  # [1, kvh, ctx, d]
        values.transpose(0, 1).unsqueeze(0),
        attn_mask=chunk.mask,
        is_causal=chunk.mask is None,
        enable_gqa=True,
    )  # [1, h, n, d]
    return out.squeeze(0).transpose(0, 1)
