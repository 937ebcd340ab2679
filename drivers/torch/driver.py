"""TorchDriver: a loaded model, its KV pool and one forward per engine step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import torch

from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.sampling import SamplerState, sample
from llmos.drivers.tokenizer import Tokenizer
from llmos.drivers.torch.batch import BatchItem, PoolLayout, prepare
from llmos.drivers.torch.kv_pool import allocate_pool, budget_bytes, page_bytes
from llmos.drivers.torch.native import decode_kernel, fused_ops
from llmos.drivers.torch.swap_space import SwapSpace
from llmos.drivers.torch.weights import build_model
from llmos.syscalls.errors import InvalidArgument
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.tiers import Move, Tier

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    """A torch dtype from its name; InvalidArgument for anything else."""
    try:
        return DTYPES[name]
    except KeyError:
        raise InvalidArgument(f"unknown dtype {name!r}; choose from {sorted(DTYPES)}") from None


class TorchDriver:
    """Runs a Llama-family model over a paged KV pool on the CPU or a CUDA device."""

    name = "torch"

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        dtype: str = "bfloat16",
        device: str = "cpu",
        page_size: int = 16,
        kv_budget: float | int = 0.2,
        max_model_len: int | None = None,
        host_swap: float | int = 0,
        disk_swap: int = 0,
        swap_file: Path | None = None,
        attention: str = "auto",
        native_dir: Path | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype)
        self.config = checkpoint.config
        self.tokenizer: Tokenizer = checkpoint.tokenizer
        self.model_name = checkpoint.name
        self.page_size = page_size
        self.max_model_len = min(
            max_model_len or self.config.max_position_embeddings,
            self.config.max_position_embeddings,
        )
        self.num_params = sum(t.numel() for t in checkpoint.tensors.values())
        self.model = build_model(
            self.config, checkpoint.tensors, self.dtype, self.device, self.max_model_len
        )
        self.kv_cache = allocate_pool(self.config, page_size, kv_budget, self.dtype, self.device)
        self.num_pages = self.kv_cache.shape[3] // page_size
        self.swap = SwapSpace(
            self.kv_cache,
            page_size,
            budget_bytes(host_swap, torch.device("cpu")) // self.page_bytes if host_swap else 0,
            disk_swap // self.page_bytes,
            swap_file,
        )
        self.layout = PoolLayout(
            page_size=page_size,
            num_pages=self.num_pages,
            num_kv_heads=self.config.num_key_value_heads,
            dtype=self.dtype,
            device=self.device,
            window=self.config.sliding_window,
            decode_kernel=decode_kernel(
                attention, self.device, self.dtype, self.config.sliding_window, native_dir
            ),
        )
        self.model.use_fused(fused_ops(attention, self.device, self.dtype, native_dir))

    @property
    def page_bytes(self) -> int:
        """Bytes of KV one page holds across all layers."""
        return page_bytes(self.config, self.page_size, self.dtype)

    def memory_stats(self) -> tuple[str, int, int]:
        """(device, total bytes, used bytes) of the device this driver runs on.

        For the CPU that is host RAM (psutil); for CUDA, the device's memory.
        """
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            return str(self.device), int(total), int(total - free)
        memory = psutil.virtual_memory()
        return "cpu", int(memory.total), int(memory.total - memory.available)

    @property
    def num_host_pages(self) -> int:
        """Pages the host swap tier holds."""
        return int(self.swap.host.shape[0])

    @property
    def num_disk_pages(self) -> int:
        """Pages the disk swap tier holds."""
        return 0 if self.swap.disk is None else int(self.swap.disk.shape[0])

    def move_pages(self, moves: list[Move]) -> list[int]:
        """Copy pages between the device pool, host swap and disk swap, in order;
        return the pids whose pages read back corrupt from disk."""
        return self.swap.move(moves)

    def export_pages(self, locations: list[tuple[Tier, int]]) -> list[memoryview]:
        """The raw bytes of each page at ``(tier, frame)``, in order (hibernation)."""
        rows = torch.empty((len(locations), self.swap.page_numel), dtype=self.dtype)
        by_tier: dict[Tier, list[tuple[int, int]]] = {}
        for position, (tier, frame) in enumerate(locations):
            by_tier.setdefault(tier, []).append((position, frame))
        for tier, pages in by_tier.items():
            positions = torch.tensor([position for position, _ in pages], dtype=torch.long)
            rows.index_put_((positions,), self.swap.read(tier, [frame for _, frame in pages]))
        return [memoryview(row) for row in rows.view(torch.uint8).numpy()]

    def import_pages(
        self, tier: Tier, frames: list[int], fill: Callable[[memoryview], None]
    ) -> None:
        """Write pages into ``frames`` of ``tier``, in order, without a buffer of their size:
        ``fill(buffer)`` must write the next ``len(buffer)`` bytes of pages (as
        :meth:`export_pages` gave them) into ``buffer``, or raise."""
        self.swap.import_pages(tier, frames, fill)

    def close(self) -> None:
        """Let go of the swap file (the model's memory goes with the driver)."""
        self.swap.close()

    def new_sampler_state(self, params: SamplingParams) -> SamplerState:
        """Per-process sampling state (its seeded generator)."""
        return SamplerState(params.seed)

    def copy_sampler_state(self, state: SamplerState) -> SamplerState:
        """A twin of ``state`` that draws the same numbers from here on (fork)."""
        twin = SamplerState(state.seed)
        twin.set_state(state.get_state())
        return twin

    @torch.inference_mode()
    def execute(
        self,
        items: list[BatchItem],
        params: Sequence[SamplingParams],
        states: Sequence[SamplerState],
        histories: Sequence[Sequence[int]],
    ) -> list[int]:
        """Run one forward over ``items``; sample one token per item that needs logits.

        ``params``, ``states`` and ``histories`` list, in order, the items with
        ``need_logits``. Returns their sampled tokens in the same order.
        """
        batch = prepare(items, self.layout)
        hidden = self.model(batch.input_ids, batch.positions, self.kv_cache, batch.meta)
        if batch.logit_rows.numel() == 0:
            return []
        logits = self.model.compute_logits(hidden.index_select(0, batch.logit_rows))
        return sample(logits, list(params), list(states), list(histories))
