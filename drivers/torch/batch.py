"""One step's batch: what the kernel asks the driver to compute, and its tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmos.drivers.torch.attention import AttentionMetadata, PrefillChunk


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


def prepare(
    items: list[BatchItem],
    page_size: int,
    window: int | None,
    device: torch.device,
    num_kv_heads: int = 1,
    dtype: torch.dtype = torch.float32,
) -> PreparedBatch:
    """Flatten items (decodes first) into input ids, positions and attention metadata."""
    order = sorted(range(len(items)), key=lambda i: not items[i].is_decode)
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
    slot_mapping = _slots(tables[row_item], pos.unsqueeze(1), page_size).squeeze(1)
    decode_pages, decode_mask = _decode_view(ordered[:num_decodes], tables, page_size, window)
    decode_bias = None if decode_mask is None else _bias(decode_mask, num_kv_heads, dtype)
    prefills = _prefill_chunks(ordered, num_decodes, tables, page_size, window, device)
    logit_rows = [row_of_last[i] for i, item in enumerate(items) if item.need_logits]
    meta = AttentionMetadata(
        slot_mapping=slot_mapping.to(device),
        num_decodes=num_decodes,
        decode_pages=None if decode_pages is None else decode_pages.to(device),
        decode_bias=None if decode_bias is None else decode_bias.to(device),
        prefills=prefills,
    )
    return PreparedBatch(
        input_ids=torch.tensor(ids, dtype=torch.long, device=device),
        positions=pos.to(device),
        meta=meta,
        logit_rows=torch.tensor(logit_rows, dtype=torch.long, device=device),
    )


def _bias(valid: torch.Tensor, num_kv_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [kvh * B, 1, L] from valid [1, B, 1, L]: 0 where allowed, -inf elsewhere."""
    batch, length = valid.shape[1], valid.shape[3]
    bias = torch.zeros(batch, length, dtype=dtype).masked_fill_(
        ~valid.view(batch, length), -torch.inf
    )
    return bias.unsqueeze(0).expand(num_kv_heads, batch, length).reshape(-1, 1, length)


def _padded_tables(items: list[BatchItem]) -> torch.Tensor:
    width = max(len(item.block_table) for item in items)
    rows = [item.block_table + [0] * (width - len(item.block_table)) for item in items]
    return torch.tensor(rows, dtype=torch.long)  # [B, max_pages]


def _slots(tables: torch.Tensor, positions: torch.Tensor, page_size: int) -> torch.Tensor:
    """Flat slot of each position: tables [R, P] and positions [R, L] give [R, L]."""
    pages = torch.gather(tables, 1, positions // page_size)
    return pages * page_size + positions % page_size


def _decode_view(
    decodes: list[BatchItem], tables: torch.Tensor, page_size: int, window: int | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Whole pages each decode reads ([Bd, P]) and which of their slots count ([1, Bd, 1, P*S])."""
    if not decodes:
        return None, None
    lengths = torch.tensor([item.context_len for item in decodes])
    num_pages = -(-int(lengths.max()) // page_size)
    # Rows past a process's own table are padded with frame 0: real, finite, masked out.
    pages = tables[: len(decodes), :num_pages]
    width = num_pages * page_size
    key_pos = torch.arange(width).expand(len(decodes), width)
    valid = key_pos < lengths.unsqueeze(1)
    if window is not None:
        valid &= key_pos > (lengths.unsqueeze(1) - 1 - window)
    return pages.contiguous(), valid.view(1, len(decodes), 1, width)


def _prefill_chunks(
    items: list[BatchItem],
    num_decodes: int,
    tables: torch.Tensor,
    page_size: int,
    window: int | None,
    device: torch.device,
) -> list[PrefillChunk]:
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
