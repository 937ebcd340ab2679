"""One step's batch: what the kernel asks the driver to compute, and its tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmos.drivers.torch.attention import (
    AttentionMetadata,
    DecodeGroup,
    DecodeKernel,
    NativeDecodes,
    PrefillChunk,
)


@dataclass(frozen=True)
class BatchItem:
    """One process's share of a step: ``token_ids`` at positions ``start..``.

    ``block_table`` maps the process's logical pages to frames and covers
    every position up to ``start + len(token_ids)``. ``need_logits`` asks for
    the logits of the last token (the process samples after this step).
    """

    token_ids: list[int]
    start: int
    block_table: list[int]
    need_logits: bool

    @property
    def is_decode(self) -> bool:
        return len(self.token_ids) == 1 and self.start > 0

    @property
    def context_len(self) -> int:
        return self.start + len(self.token_ids)


@dataclass
class PreparedBatch:
    """Tensors for one forward, rows ordered decodes first."""

    input_ids: torch.Tensor  # [T]
    positions: torch.Tensor  # [T]
    meta: AttentionMetadata
    logit_rows: torch.Tensor  # [N] rows whose logits are wanted, in the caller's item order


@dataclass(frozen=True)
class PoolLayout:
    """What batch preparation must know of the KV pool and the model."""

    page_size: int
    num_pages: int
    num_kv_heads: int
    dtype: torch.dtype
    device: torch.device
    window: int | None = None
    decode_kernel: DecodeKernel | None = None  # reads pages in place; None: the torch path


def prepare(items: list[BatchItem], layout: PoolLayout) -> PreparedBatch:
    """Flatten items (decodes first) into input ids, positions and attention metadata."""
    # Decodes first, shortest context first, so length groups pad little.
    order = sorted(
        range(len(items)),
        key=lambda i: (not items[i].is_decode, items[i].context_len if items[i].is_decode else 0),
    )
    ordered = [items[i] for i in order]
    num_decodes = sum(1 for item in ordered if item.is_decode)
    ids: list[int] = []
    positions: list[int] = []
    row_of_last: dict[int, int] = {}
    for index, item in zip(order, ordered, strict=True):
        ids.extend(item.token_ids)
        positions.extend(range(item.start, item.context_len))
        row_of_last[index] = len(ids) - 1
    pos = torch.tensor(positions, dtype=torch.long)
    tables = _padded_tables(ordered)
    row_item = torch.repeat_interleave(
        torch.arange(len(ordered)), torch.tensor([len(it.token_ids) for it in ordered])
    )
    slot_mapping = _slots(tables[row_item], pos.unsqueeze(1), layout.page_size).squeeze(1)
    lengths = [it.context_len for it in ordered[:num_decodes]]
    native = None
    groups: list[DecodeGroup] = []
    if layout.decode_kernel is not None:
        native = _native_decodes(tables[:num_decodes], lengths, layout.decode_kernel)
    else:
        groups = [
            _decode_group(ordered, tables, start, end, layout)
            for start, end in length_groups(lengths)
        ]
    prefills = _prefill_chunks(ordered, num_decodes, tables, layout)
    logit_rows = [row_of_last[i] for i, item in enumerate(items) if item.need_logits]
    meta = AttentionMetadata(
        slot_mapping=slot_mapping.to(layout.device),
        page_size=layout.page_size,
        num_decodes=num_decodes,
        decode_groups=groups,
        prefills=prefills,
        native=native,
    )
    return PreparedBatch(
        input_ids=torch.tensor(ids, dtype=torch.long, device=layout.device),
        positions=pos.to(layout.device),
        meta=meta,
        logit_rows=torch.tensor(logit_rows, dtype=torch.long, device=layout.device),
    )


def _padded_tables(items: list[BatchItem]) -> torch.Tensor:
    width = max(len(item.block_table) for item in items)
    rows = [item.block_table + [0] * (width - len(item.block_table)) for item in items]
    return torch.tensor(rows, dtype=torch.long)  # [B, max_pages]


def _slots(tables: torch.Tensor, positions: torch.Tensor, page_size: int) -> torch.Tensor:
    """Flat slot of each position: tables [R, P] and positions [R, L] give [R, L]."""
    pages = torch.gather(tables, 1, positions // page_size)
    return pages * page_size + positions % page_size


def length_groups(
    lengths: list[int], max_waste: float = 0.25, min_size: int = 8
) -> list[tuple[int, int]]:
    """Split sorted context lengths into runs [start, end) whose padding stays small.

    A group pads every member to its longest context; a new group starts when
    adding the next member would make the padding exceed ``max_waste`` of the
    group's real tokens (groups of fewer than ``min_size`` are never split off,
    since each group costs a few more ops per layer).
    """
    groups: list[tuple[int, int]] = []
    start, total = 0, 0
    for index, length in enumerate(lengths):
        size = index - start
        if size >= min_size and length * (size + 1) > (1 + max_waste) * (total + length):
            groups.append((start, index))
            start, total = index, 0
        total += length
    if lengths:
        groups.append((start, len(lengths)))
    return groups


def _decode_group(
    items: list[BatchItem], tables: torch.Tensor, start: int, end: int, layout: PoolLayout
) -> DecodeGroup:
    """Whole pages each decode of rows [start, end) reads, and the additive mask of their slots."""
    page_size, window, num_kv_heads = layout.page_size, layout.window, layout.num_kv_heads
    lengths = torch.tensor([item.context_len for item in items[start:end]])
    num_pages = -(-int(lengths.max()) // page_size)
    # Rows past a process's own table are padded with frame 0: real, finite, masked out.
    pages = tables[start:end, :num_pages].contiguous()
    width = num_pages * page_size
    key_pos = torch.arange(width).expand(end - start, width)
    valid = key_pos < lengths.unsqueeze(1)
    if window is not None:
        valid &= key_pos > (lengths.unsqueeze(1) - 1 - window)
    bias = torch.zeros(end - start, width, dtype=layout.dtype).masked_fill_(~valid, -torch.inf)
    bias = bias.unsqueeze(0).expand(num_kv_heads, end - start, width).reshape(-1, 1, width)
    # Rows of the pool viewed as [2 * kvh * num_pages, page_size * d]: K heads, then V heads.
    head_base = torch.arange(2 * num_kv_heads).unsqueeze(1) * layout.num_pages
    gather = (head_base + pages.reshape(1, -1)).reshape(-1)
    return DecodeGroup(
        start=start,
        num=end - start,
        gather_index=gather.to(layout.device),
        bias=bias.to(layout.device),
    )


def _native_decodes(
    tables: torch.Tensor, lengths: list[int], kernel: DecodeKernel
) -> NativeDecodes | None:
    """The decodes' block tables and context lengths, as int32 (the kernel reads them raw)."""
    if not lengths:
        return None
    return NativeDecodes(
        kernel=kernel,
        tables=tables.to(torch.int32).contiguous(),
        lens=torch.tensor(lengths, dtype=torch.int32),
    )


def _prefill_chunks(
    items: list[BatchItem], num_decodes: int, tables: torch.Tensor, layout: PoolLayout
) -> list[PrefillChunk]:
    page_size, window, device = layout.page_size, layout.window, layout.device
    chunks: list[PrefillChunk] = []
    row = sum(len(item.token_ids) for item in items[:num_decodes])
    for index in range(num_decodes, len(items)):
        item = items[index]
        num = len(item.token_ids)
        ctx = item.context_len
        needs_window = window is not None and ctx > window
        slots = mask = None
        if item.start > 0:
            key_pos = torch.arange(ctx)
            slots = _slots(tables[index : index + 1], key_pos.unsqueeze(0), page_size)[0].to(device)
        if item.start > 0 or needs_window:
            mask = _chunk_mask(item.start, num, ctx, window).to(device)
        chunks.append(PrefillChunk(start=row, num_tokens=num, context_slots=slots, mask=mask))
        row += num
    return chunks


def _chunk_mask(start: int, num: int, ctx: int, window: int | None) -> torch.Tensor:
    query_pos = torch.arange(start, start + num).unsqueeze(1)
    key_pos = torch.arange(ctx).unsqueeze(0)
    allowed = key_pos <= query_pos
    if window is not None:
        allowed &= key_pos > query_pos - window
    return allowed.view(1, 1, num, ctx)
