"""Which sections run on which freshly loaded engine, and the clock on each section."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.pages import pages_for

from harness.contention import other_cpu_meter
from harness.kv import kv_bytes_per_token
from harness.models import prepare_model
from harness.report import Row
from harness.workloads import SCALES, make_workloads, token_pool
from memory_bench.fork import bench_cow, bench_fork
from memory_bench.prompts import Prompts
from memory_bench.sizes import PAGE_SIZE, Sizes
from memory_bench.swap import bench_swap
from memory_bench.workloads import bench_workloads

TABLE_ORDER = ("fork", "copy-on-write", "swap and hibernation", "workloads")
SECTIONS = dict(zip(("fork", "cow", "swap", "workloads"), TABLE_ORDER, strict=True))


def engine_configs(args: argparse.Namespace, sizes: Sizes, hf_folder: Path) -> dict[str, Any]:
    """Both engines' settings: a KV pool for the largest section (as bench/throughput.py
    sizes it: no preemption), host swap for one process of ``swap_tokens``."""
    per_token = kv_bytes_per_token(hf_folder / "config.json", args.dtype)
    varied = make_workloads(list(range(1000)), SCALES[sizes.workload], seed=1)["varied"]
    shared = sizes.num_shared * (sizes.system_prompt + sizes.user_prompt[1] + sizes.shared_output)
    forks = sum(sizes.fork_lengths) + 2 * sizes.swap_tokens + sizes.cow_context
    need = max(varied.useful_tokens + PAGE_SIZE * len(varied.prompts), shared, forks)
    kv_budget = max(int(need * per_token * 1.25), 64 << 20)
    host_pages = pages_for(sizes.swap_tokens, PAGE_SIZE) + 2
    return {
        "dtype": args.dtype,
        "page_size": PAGE_SIZE,
        "kv_budget": kv_budget,
        "host_swap": host_pages * PAGE_SIZE * per_token,
    }


@contextlib.contextmanager
def loaded(
    model: str, settings: dict[str, Any], data_dir: Path | None, names: tuple[str, ...]
) -> Iterator[dict[str, Engine]]:
    """Fresh engines by name ("on"/"off": the prefix cache); their swap files go after."""
    engines: dict[str, Engine] = {}
    try:
        for name in names:
            config = EngineConfig(**settings, prefix_cache=name != "off")
            engines[name] = Engine.from_model(model, config, data_dir)
        yield engines
    finally:
        for engine in engines.values():
            engine.close()


def run_sections(
    args: argparse.Namespace, sizes: Sizes, folder: Path, report: dict[str, Any]
) -> list[Row]:
    """The workloads on two fresh engines alike but for the prefix cache; then sections
    1-4 on a fresh engine of the default configuration (so each starts from a clean pool)."""
    model, hf_folder = prepare_model(folder, is_tiny=args.tiny, data_dir=args.data_dir)
    settings = engine_configs(args, sizes, hf_folder)
    report["engine"] = settings
    pool = token_pool(hf_folder / "tokenizer.json", 2 * max(sizes.fork_lengths) + 600)
    found: dict[str, list[Row]] = {}
    chosen = {SECTIONS[name] for name in args.sections}
    if "workloads" in chosen:
        with loaded(model, settings, args.data_dir, ("on", "off")) as engines:
            prompts = Prompts(pool, engines["on"].tokenizer.vocab_size, args.seed)
            measure(found, "workloads", lambda: bench_workloads(engines, prompts, sizes, report))
    with loaded(model, settings, args.data_dir, ("on",)) as engines:
        main = engines["on"]
        if "workloads" not in chosen:
            prompts = Prompts(pool, main.tokenizer.vocab_size, args.seed)
        sections: dict[str, Callable[[], list[Row]]] = {
            "fork": lambda: bench_fork(main, prompts, sizes, report),
            "copy-on-write": lambda: bench_cow(main, prompts, sizes, report),
            "swap and hibernation": lambda: bench_swap(main, prompts, sizes, folder, report),
        }
        for name, section in sections.items():
            if name in chosen:
                measure(found, name, section)
    return [row for name in TABLE_ORDER if name in found for row in found[name]]


def measure(found: dict[str, list[Row]], name: str, section: Callable[[], list[Row]]) -> None:
    """Run one section; note the other processes' CPU use on its rows."""
    meter, start = other_cpu_meter(), time.perf_counter()
    found[name] = section()
    for row in found[name]:
        row.other_cpu = meter()
    print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
