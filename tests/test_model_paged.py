"""Our paged model against transformers: same logits for mixed prefill/decode batches."""

from __future__ import annotations

import random

import pytest
import torch
import transformers
from tinymodels import tiny_hf_model

from llmos.drivers.config import ModelConfig
from llmos.drivers.torch.batch import BatchItem, PoolLayout, length_groups, prepare
from llmos.drivers.torch.kv_pool import allocate_pool, page_bytes
from llmos.drivers.torch.native import decode_kernel, fused_ops
from llmos.drivers.torch.weights import build_model
from llmos.kernel.pages import PageAllocator, pages_for

PAGE = 4
VOCAB = 160


def tiny_hf(arch: str, **extra: object) -> transformers.PreTrainedModel:
    return tiny_hf_model(arch, VOCAB, tie=arch != "qwen2", **extra)


class PagedHarness:
    """Drives our model directly with a page allocator: a test double of the engine loop."""

    def __init__(
        self, hf: transformers.PreTrainedModel, num_pages: int = 64, attention: str = "torch"
    ) -> None:
        self.config = ModelConfig.from_hf(hf.config.to_dict())
        self.model = build_model(
            self.config, dict(hf.state_dict()), torch.float32, torch.device("cpu")
        )
        budget = num_pages * page_bytes(self.config, PAGE, torch.float32)
        self.pool = allocate_pool(self.config, PAGE, budget, torch.float32, torch.device("cpu"))
        self.allocator = PageAllocator(num_pages, PAGE)
        self.layout = PoolLayout(
            page_size=PAGE,
            num_pages=num_pages,
            num_kv_heads=self.config.num_key_value_heads,
            dtype=torch.float32,
            device=torch.device("cpu"),
            window=self.config.sliding_window,
            decode_kernel=decode_kernel(
                attention, torch.device("cpu"), torch.float32, self.config.sliding_window
            ),
        )
        self.model.use_fused(fused_ops(attention, torch.device("cpu"), torch.float32))
        # Hand out frames in a scrambled order so block tables are not contiguous.
        frames = self.allocator.allocate(num_pages)
        random.Random(1).shuffle(frames)
        self.allocator.free(frames)

    def run(self, work: list[tuple[list[int], int, list[int]]]) -> list[torch.Tensor]:
        """work: (chunk tokens, start, block_table); returns last-token logits per item."""
        items = [BatchItem(tokens, start, table, True) for tokens, start, table in work]
        batch = prepare(items, self.layout)
        with torch.inference_mode():
            hidden = self.model(batch.input_ids, batch.positions, self.pool, batch.meta)
            logits = self.model.compute_logits(hidden.index_select(0, batch.logit_rows))
        return list(logits)

    def grow(self, table: list[int], num_tokens: int) -> None:
        need = pages_for(num_tokens, PAGE) - len(table)
        if need > 0:
            table.extend(self.allocator.allocate(need))


def run_mixed_batch(
    hf: transformers.PreTrainedModel,
    chunk: int,
    steps: int = 40,
    lengths: tuple[int, ...] = (5, 11, 17, 3, 9),
    joins: tuple[int, ...] = (0, 0, 3, 7, 12),
    attention: str = "torch",
) -> None:
    num_pages = sum(lengths) // PAGE + len(lengths) * (steps // PAGE + 2)
    harness = PagedHarness(hf, num_pages, attention)
    rng = random.Random(0)
    prompts = [[rng.randrange(VOCAB) for _ in range(n)] for n in lengths]
    seqs: list[dict[str, object]] = []
    for step in range(steps):
        for index, join in enumerate(joins):
            if join == step:
                seqs.append({"tokens": list(prompts[index]), "done": 0, "table": [], "logits": []})
        work, owners = [], []
        for seq in seqs:
            tokens, done, table = seq["tokens"], seq["done"], seq["table"]
            num = min(len(tokens) - done, chunk)  # type: ignore[arg-type]
            harness.grow(table, done + num)  # type: ignore[arg-type, operator]
            work.append((tokens[done : done + num], done, list(table)))  # type: ignore[index]
            owners.append((seq, num))
        outs = harness.run(work)
        for (seq, num), logits in zip(owners, outs, strict=True):
            seq["done"] += num  # type: ignore[operator]
            if seq["done"] == len(seq["tokens"]):  # type: ignore[arg-type]
                seq["logits"].append(logits)  # type: ignore[union-attr]
                seq["tokens"].append(int(logits.argmax()))  # type: ignore[union-attr]
    assert all(len(seq["logits"]) >= steps // 3 for seq in seqs)  # type: ignore[arg-type]
    for index, seq in enumerate(seqs):
        tokens = seq["tokens"]
        with torch.no_grad():
            ref = hf(torch.tensor([tokens[:-1]])).logits[0]  # type: ignore[index]
        first = len(prompts[index]) - 1
        ours = torch.stack(seq["logits"])  # type: ignore[arg-type]
        torch.testing.assert_close(ours, ref[first:], atol=1e-4, rtol=1e-4)


ATTENTION = ["torch", "native"]  # decodes through the torch path, or the C kernel


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_mixed_batch_matches_transformers(arch: str, attention: str) -> None:
    run_mixed_batch(tiny_hf(arch), chunk=10_000, attention=attention)


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_chunked_prefill_matches_transformers(arch: str, attention: str) -> None:
    run_mixed_batch(tiny_hf(arch), chunk=4, attention=attention)


def test_rope_scaling_variants_match() -> None:
    llama3 = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32,
    }
    run_mixed_batch(tiny_hf("llama", rope_scaling=llama3), chunk=7, steps=30)
    run_mixed_batch(
        tiny_hf("llama", rope_scaling={"rope_type": "linear", "factor": 2.0}), chunk=7, steps=30
    )


@pytest.mark.parametrize("attention", ATTENTION)
def test_sliding_window_matches_transformers(attention: str) -> None:
    run_mixed_batch(tiny_hf("mistral", sliding_window=8), chunk=5, steps=30, attention=attention)


def test_many_lengths_split_into_decode_groups() -> None:
    lengths = (3, 4, 5, 6, 7, 8, 9, 10, 11, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80)
    assert len(length_groups(sorted(n + 20 for n in lengths))) > 1
    run_mixed_batch(tiny_hf("llama"), chunk=10_000, steps=25, lengths=lengths, joins=(0,) * 20)


def test_length_groups_bound_padding() -> None:
    assert length_groups([]) == []
    assert length_groups([5] * 30) == [(0, 30)]
    lengths = sorted(random.Random(3).randrange(10, 700) for _ in range(64))
    groups = length_groups(lengths)
    assert groups[0][0] == 0 and groups[-1][1] == 64
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:], strict=False))
    for start, end in groups:
        members = lengths[start:end]
        assert end - start >= 8 or (start, end) == groups[-1]
        assert max(members) * len(members) <= 1.25 * sum(members) + max(members)
