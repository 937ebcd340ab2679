"""Helpers for bench/throughput.py: machine info, prompts, workloads, the transformers baselines.

Prompts are token ids sliced from real English text, so both systems get the
exact same ids and every length is exact.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PARAGRAPH = (
    "The history of computing is a story of layers. Early machines were programmed by "
    "rewiring panels, and every job owned the whole computer while it ran. Operating "
    "systems arrived to share that precious hardware: they scheduled programs, gave each "
    "one the illusion of its own memory through paging, and moved data between fast and "
    "slow storage without the programs noticing. Decades later, large language models "
    "face a similar problem. A model's attention cache grows with every token, requests "
    "arrive at random times with prompts of very different lengths, and the accelerator "
    "is most efficient when it works on many sequences at once. Serving systems borrowed "
    "the old ideas: they split the cache into fixed-size pages, admit new requests while "
    "others are still generating, and preempt a sequence when memory runs short, just as "
    "a kernel would swap out a process. The result is that one machine can answer many "
    "more questions per second, while each answer still arrives quickly enough to feel "
    "interactive. Of course, none of this matters if the answers are wrong, so careful "
    "engineers check that batching never changes what a model says."
)
PAD_ID = 2  # SmolLM2's <|endoftext|>; always masked out


@dataclass(frozen=True)
class Scale:
    """How big each workload is."""

    num_prompts: int = 64
    prompt_len: int = 32
    output_len: int = 128
    varied_prompt: tuple[int, int] = (10, 500)
    varied_output: tuple[int, int] = (16, 256)
    num_sequential: int = 4


SCALES = {
    "full": Scale(),
    "quick": Scale(16, 32, 32, (10, 200), (8, 64), 4),
    "tiny": Scale(4, 16, 8, (10, 40), (4, 8), 2),
}


@dataclass
class Workload:
    name: str
    prompts: list[list[int]]
    outputs: list[int]  # requested output length per prompt

    @property
    def useful_tokens(self) -> int:
        return sum(len(p) for p in self.prompts) + sum(self.outputs)


@dataclass
class Result:
    workload: str
    system: str
    tokens: int
    seconds: float
    other_cpu: float = 0.0  # cores other processes used meanwhile (contention)
    baseline: str | None = None  # system this row is compared against
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": num_cores(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def num_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def token_pool(tokenizer_json: Path, min_len: int) -> list[int]:
    """Token ids of PARAGRAPH repeated until there are at least ``min_len`` of them."""
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer_json)).encode(PARAGRAPH, add_special_tokens=False).ids
    return ids * (min_len // len(ids) + 1)


def make_workloads(pool: list[int], scale: Scale, seed: int) -> dict[str, Workload]:
    rng = random.Random(seed)

    def prompt(length: int) -> list[int]:
        start = rng.randrange(len(pool) - length)
        return pool[start : start + length]

    n, plen, olen = scale.num_prompts, scale.prompt_len, scale.output_len
    varied_p = [rng.randint(*scale.varied_prompt) for _ in range(n)]
    varied_o = [rng.randint(*scale.varied_output) for _ in range(n)]
    return {
        "single": Workload("single", [prompt(plen)], [olen]),
        "fixed": Workload("fixed", [prompt(plen) for _ in range(n)], [olen] * n),
        "varied": Workload("varied", [prompt(p) for p in varied_p], varied_o),
    }


def kv_bytes_per_token(config_json: Path, dtype: str) -> int:
    cfg = json.loads(config_json.read_text())
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    elem = 2 if dtype == "bfloat16" else 4
    return int(2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * elem)


def busy_cpu_seconds() -> float:
    """CPU seconds all processes have spent busy since boot (0 where /proc is missing)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], int], repeat: int = 1) -> tuple[int, float, float]:
    """Run ``fn`` (returns a token count) ``repeat`` times; return the fastest run's
    (tokens, seconds, cores used by other processes meanwhile)."""
    best: tuple[int, float, float] | None = None
    for _ in range(repeat):
        busy, cpu, start = busy_cpu_seconds(), time.process_time(), time.perf_counter()
        tokens = fn()
        wall = time.perf_counter() - start
        others = busy_cpu_seconds() - busy - (time.process_time() - cpu)
        run = (tokens, wall, max(others, 0.0) / wall)
        if best is None or run[1] < best[1]:
            best = run
    assert best is not None
    return best


def hf_generate(model: Any, prompts: list[list[int]], new_tokens: int) -> int:
    """One left-padded greedy batch of exactly ``new_tokens`` each; returns tokens generated."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=PAD_ID,
    )
    generated = int(out.shape[1]) - width
    if generated != new_tokens:
        raise RuntimeError(f"transformers generated {generated} tokens, asked {new_tokens}")
    return generated * len(prompts)


def hf_sequential(model: Any, prompts: list[list[int]], new_tokens: int) -> int:
    return sum(hf_generate(model, [p], new_tokens) for p in prompts)


def load_hf_model(folder: Path, dtype: str) -> Any:
    import transformers

    hf: Any = transformers  # untyped in places
    hf.logging.set_verbosity_error()
    hf.utils.logging.disable_progress_bar()
    model: Any = hf.AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    return model.eval()
