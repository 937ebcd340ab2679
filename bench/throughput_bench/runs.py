"""The timed runs: the llmos engine and the transformers baselines, one dtype at a time."""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
from typing import Any

import torch

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine

from harness.kv import kv_budget
from harness.models import MODEL
from harness.timing import timed
from harness.workloads import SCALES, Workload, greedy
from throughput_bench.hf import hf_generate, hf_sequential, load_hf_model
from throughput_bench.report import Result


def run_ours(engine: Engine, work: Workload) -> tuple[int, int]:
    """Run ``work`` through the engine; return (generated tokens, preemptions)."""
    done = engine.generate(work.prompts, [greedy(n) for n in work.outputs])
    for completion, want in zip(done, work.outputs, strict=True):
        if len(completion.token_ids) != want:
            raise RuntimeError(f"llmos generated {len(completion.token_ids)} tokens, asked {want}")
    return sum(len(c.token_ids) for c in done), sum(c.stats.get("num_preemptions", 0) for c in done)


def bench_ours(engine: Engine, work: Workload, baseline: str, repeat: int) -> Result:
    """The engine's row for ``work``, compared against ``baseline``."""
    holder: dict[str, int] = {}

    def go() -> int:
        generated, holder["preemptions"] = run_ours(engine, work)
        return work.useful_tokens if work.name == "varied" else generated

    return Result(work.name, "llmos", *timed(go, repeat), baseline, dict(holder))


def bench_hf(model: Any, work: Workload, num_sequential: int, repeat: int) -> list[Result]:
    """The transformers baselines for one workload."""
    if work.name == "single":
        run = timed(lambda: hf_sequential(model, work.prompts, work.outputs[0]), repeat)
        return [Result(work.name, "hf-sequential", *run)]
    longest = max(work.outputs)
    generated, secs, other = timed(lambda: hf_generate(model, work.prompts, longest), repeat)
    if work.name == "varied":  # only the requested tokens are useful
        extra = {"generated": generated}
        return [Result(work.name, "hf-padded", work.useful_tokens, secs, other, None, extra)]
    results = [Result(work.name, "hf-padded", generated, secs, other)]
    first = work.prompts[:num_sequential]
    run = timed(lambda: hf_sequential(model, first, longest), repeat)
    results.append(Result(work.name, f"hf-sequential[:{len(first)}]", *run))
    return results


def run_dtype(
    dtype: str, args: argparse.Namespace, folder: Path, work: dict[str, Workload]
) -> list[Result]:
    """Every chosen workload on both systems, each warmed up first, in ``dtype``."""
    torch.set_num_threads(args.threads)
    config = EngineConfig(dtype=dtype, kv_budget=kv_budget(work, folder / "config.json", dtype))
    engine = Engine.from_model(MODEL, config, data_dir=args.data_dir)
    model = load_hf_model(folder, dtype)
    warm = [work["single"].prompts[0][:12], work["fixed"].prompts[-1][:20]]
    run_ours(engine, Workload("warmup", warm, [4, 4]))
    hf_generate(model, warm, 4)
    results: list[Result] = []
    for name in args.workloads:
        baseline = "hf-sequential" if name == "single" else "hf-padded"
        results.append(bench_ours(engine, work[name], baseline, args.repeat))
        num_sequential = SCALES[args.scale].num_sequential
        results.extend(bench_hf(model, work[name], num_sequential, args.repeat))
    del engine, model
    gc.collect()
    return results
