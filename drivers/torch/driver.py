"""TorchDriver: a loaded model, its KV pool and one forward per engine step."""

from __future__ import annotations

from collections.abc import Sequence

import psutil
import torch

from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.sampling import SamplerState, sample
from llmos.drivers.tokenizer import Tokenizer
from llmos.drivers.torch.batch import BatchItem, PoolLayout, prepare
from llmos.drivers.torch.kv_pool import allocate_pool, page_bytes
from llmos.drivers.torch.weights import build_model
from llmos.syscalls.errors import InvalidArgument
from llmos.syscalls.sampling import SamplingParams

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
        self.layout = PoolLayout(
            page_size=page_size,
            num_pages=self.num_pages,
            num_kv_heads=self.config.num_key_value_heads,
            dtype=self.dtype,
            device=self.device,
            window=self.config.sliding_window,
        )

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

    def new_sampler_state(self, params: SamplingParams) -> SamplerState:
        """Per-process sampling state (its seeded generator)."""
        return SamplerState(params.seed)

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
