"""Paged attention, torch reference path.

Every step's batch is flat: ``T`` new tokens from several processes, decode
tokens first, then prefill chunks. Each layer writes its new K/V into the
page pool through ``slot_mapping`` and then reads each process's whole
context back through its block table (already flattened to slot indices).
Decodes run as one padded batch; prefill chunks run one process at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# (q [B, h, d], layer cache, tables [B, W] int32, lens [B] int32, page size) -> [B, h, d]
DecodeKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


@dataclass
class PrefillChunk:
    """One process's prefill chunk inside the flat batch."""

    start: int  # first row in the flat batch
    num_tokens: int
    context_slots: torch.Tensor | None  # [ctx] slots incl. this chunk; None: no earlier context
    mask: torch.Tensor | None  # [1, 1, n, ctx] bool, True = may attend; None: plain causal


@dataclass
class DecodeGroup:
    """Decode rows [start, start + num) of similar context length, padded together."""

    start: int
    num: int
    gather_index: torch.Tensor  # [2 * kvh * num * P] rows of the pool viewed by page
    bias: torch.Tensor  # [kvh * num, 1, P * page_size]: 0 or -inf per key


@dataclass
class NativeDecodes:
    """Every decode row at once, for a kernel that reads the pages in place."""

    kernel: DecodeKernel
    tables: torch.Tensor  # [num_decodes, W] int32 frames
    lens: torch.Tensor  # [num_decodes] int32 context lengths


@dataclass
class AttentionMetadata:
    """Where a step's tokens go and what each of them may read.

    Decodes run either through ``native`` (one kernel call) or, on the torch
    path, as ``decode_groups``.
    """

    slot_mapping: torch.Tensor  # [T] flat slot of every new token
    page_size: int
    num_decodes: int  # rows 0..num_decodes-1 are single decode tokens
    decode_groups: list[DecodeGroup]
    prefills: list[PrefillChunk]
    native: NativeDecodes | None = None


def store_kv(
    k: torch.Tensor, v: torch.Tensor, layer_cache: torch.Tensor, meta: AttentionMetadata
) -> None:
    """Write the step's new k/v [T, kvh, d] into their slots of one layer's pool."""
    layer_cache[0].index_copy_(1, meta.slot_mapping, k.transpose(0, 1))
    layer_cache[1].index_copy_(1, meta.slot_mapping, v.transpose(0, 1))


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layer_cache: torch.Tensor,
    meta: AttentionMetadata,
) -> torch.Tensor:
    """Attend q [T, h, d] over each row's paged context, the step's k/v already stored.

    ``layer_cache`` is one layer's pool, [2, kvh, num_slots, d]: head-major,
    so a gather of slots yields per-head contiguous [slots, d] matrices that
    batched matmuls read without copies. Returns [T, h, d].
    """
    num_decodes = meta.num_decodes
    groups = meta.decode_groups
    native = meta.native
    if native is not None:
        decoded = native.kernel(
            q[:num_decodes], layer_cache, native.tables, native.lens, meta.page_size
        )
        if num_decodes == q.shape[0]:  # decodes only: the kernel's output is the answer
            return decoded
    elif num_decodes == q.shape[0] and len(groups) == 1:  # one group: no buffer to fill
        return _decode(q, layer_cache, groups[0], meta.page_size)
    out = torch.empty_like(q)
    if native is not None:
        out[:num_decodes] = decoded
    for group in groups:
        rows = slice(group.start, group.start + group.num)
        out[rows] = _decode(q[rows], layer_cache, group, meta.page_size)
    for chunk in meta.prefills:
        rows = slice(chunk.start, chunk.start + chunk.num_tokens)
        out[rows] = _prefill(q[rows], k[rows], v[rows], layer_cache, chunk)
    return out


def _decode(
    q: torch.Tensor, layer_cache: torch.Tensor, group: DecodeGroup, page_size: int
) -> torch.Tensor:
    batch, num_heads, head_dim = q.shape
    num_kv_heads = layer_cache.shape[1]
    length = group.bias.shape[-1]
    groups = num_heads // num_kv_heads
    # One gather of whole pages (contiguous runs) for K and V of every head.
    by_page = layer_cache.view(-1, page_size * head_dim)  # [2*kvh*num_pages, S*d]
    kv = by_page.index_select(0, group.gather_index)  # [2*kvh*B*P, S*d]
    kv = kv.view(2, num_kv_heads * batch, length, head_dim)  # [2, kvh*B, L, d]
    grouped_q = q.view(batch, num_kv_heads, groups, head_dim).transpose(0, 1)
    grouped_q = grouped_q.reshape(num_kv_heads * batch, groups, head_dim)  # [kvh*B, g, d]
    scale = head_dim**-0.5
    scores = torch.baddbmm(
        group.bias, grouped_q, kv[0].transpose(1, 2), alpha=scale
    )  # [kvh*B, g, L]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.bmm(probs, kv[1])  # [kvh*B, g, d]
    out = out.view(num_kv_heads, batch, groups, head_dim).transpose(0, 1)
    return out.reshape(batch, num_heads, head_dim)


def _prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layer_cache: torch.Tensor,
    chunk: PrefillChunk,
) -> torch.Tensor:
    if chunk.context_slots is None:
        keys, values = k.transpose(0, 1), v.transpose(0, 1)  # [kvh, n, d]: the whole context
    else:
        keys = layer_cache[0].index_select(1, chunk.context_slots)  # [kvh, ctx, d]
        values = layer_cache[1].index_select(1, chunk.context_slots)
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1).unsqueeze(0),  # [1, h, n, d]
        keys.unsqueeze(0),  # [1, kvh, ctx, d]
        values.unsqueeze(0),
        attn_mask=chunk.mask,
        is_causal=chunk.mask is None,
        enable_gqa=True,
    )  # [1, h, n, d]
    return out.squeeze(0).transpose(0, 1)
