"""The ``streaming`` part: the varied workload in-process against as streams through a kernel."""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from llmos.syscalls.aclient import AsyncClient
from llmos.syscalls.streams import AsyncProcessStream

from harness.contention import contended
from harness.kv import kv_budget
from harness.models import prepare_model
from harness.stats import median_pair
from harness.workloads import SCALES, Workload, greedy, make_workloads, token_pool
from syscall_bench.servers import kernel_daemon


def varied_workload(args: argparse.Namespace, hf_folder: Path) -> Workload:
    """bench/throughput.py's varied workload at ``--tiny``/``--quick`` scale."""
    scale = SCALES[args.scale]
    pool = token_pool(hf_folder / "tokenizer.json", scale.varied_prompt[1] + 1)
    return make_workloads(pool, scale, args.seed)["varied"]


def in_process_rates(
    model: str, args: argparse.Namespace, budget: int, work: Workload
) -> list[tuple[float, float]]:
    """(generated tokens/s, other cores) of ``Engine.generate``, once per ``--repeat``."""
    from llmos.kernel.config import EngineConfig
    from llmos.kernel.engine import Engine

    engine = Engine.from_model(
        model, EngineConfig(dtype=args.dtype, kv_budget=budget), args.data_dir
    )

    def run() -> float:
        start = time.perf_counter()
        done = engine.generate(work.prompts, [greedy(n) for n in work.outputs])
        seconds = time.perf_counter() - start
        assert [len(c.token_ids) for c in done] == work.outputs
        return sum(work.outputs) / seconds

    run()  # warm-up: the first pass over new shapes is much slower
    return [contended(run) for _ in range(args.repeat)]


async def stream_all(path: Path, model: str, work: Workload) -> float:
    """Generated tokens/s with every request a ``run`` stream of one connection, all at once."""

    async def one(client: AsyncClient, prompt: list[int], max_tokens: int) -> AsyncProcessStream:
        sampling: dict[str, Any] = {
            "temperature": 0.0,
            "ignore_eos": True,
            "max_tokens": max_tokens,
        }
        stream = await client.run(token_ids=prompt, model=model, **sampling)
        async for _ in stream:
            pass
        assert stream.exit_status == "length", stream.final
        return stream

    async with AsyncClient(path) as client:
        start = time.perf_counter()
        requests = zip(work.prompts, work.outputs, strict=True)
        streams = await asyncio.gather(*(one(client, p, n) for p, n in requests))
        seconds = time.perf_counter() - start
        await asyncio.gather(*(client.wait(s.pid) for s in streams))
    assert [len(s.token_ids) for s in streams] == work.outputs
    return sum(work.outputs) / seconds


def kernel_rates(
    model: str, args: argparse.Namespace, budget: int, work: Workload
) -> list[tuple[float, float]]:
    """(generated tokens/s, other cores) through a kernel daemon, once per ``--repeat``."""
    folder = Path(tempfile.mkdtemp(prefix="llmos-b-", dir="/tmp"))
    settings = {"dtype": args.dtype, "kv_budget": budget, "log_level": "WARNING"}
    if args.data_dir is not None:
        settings["data_dir"] = args.data_dir
    try:
        with kernel_daemon(folder, [model], **settings) as path:
            asyncio.run(stream_all(path, model, work))  # warm-up, as in-process
            run = lambda: asyncio.run(stream_all(path, model, work))  # noqa: E731
            return [contended(run) for _ in range(args.repeat)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_streaming(args: argparse.Namespace) -> dict[str, Any]:
    """The varied workload in-process, then through a kernel; the medians."""
    folder = Path(tempfile.mkdtemp(prefix="llmos-m-"))
    try:
        model, hf_folder = prepare_model(folder, is_tiny=args.tiny, data_dir=args.data_dir)
        work = varied_workload(args, hf_folder)
        budget = kv_budget({"varied": work}, hf_folder / "config.json", args.dtype)
        ours = median_pair(in_process_rates(model, args, budget, work))
        gc.collect()  # the in-process engine goes before the kernel loads its own
        kernel = median_pair(kernel_rates(model, args, budget, work))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    plens = [len(p) for p in work.prompts]
    return {
        "model": model if not args.tiny else "tiny-random-llama",
        "num_requests": len(work.prompts),
        "prompt_tokens": [min(plens), max(plens)],
        "output_tokens": [min(work.outputs), max(work.outputs)],
        "in_process_tok_s": ours[0],
        "kernel_tok_s": kernel[0],
        "lost_pct": 100.0 * (1.0 - kernel[0] / ours[0]),
        "in_process_other_cpu": ours[1],
        "kernel_other_cpu": kernel[1],
    }
