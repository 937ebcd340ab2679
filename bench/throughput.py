"""Throughput of the llmos engine against transformers' ``generate``, same model, same prompts.

    .venv/bin/python bench/throughput.py                  # bfloat16 and float32, all workloads
    .venv/bin/python bench/throughput.py --quick --dtype bfloat16
    .venv/bin/python bench/throughput.py --workloads varied --json out.json

Greedy decoding with a fixed output length on both sides (llmos: ``ignore_eos``;
transformers: ``min_new_tokens == max_new_tokens``). Wall-clock times exclude
model loading; each system gets a short warm-up first. Workloads:

* ``single``: one prompt; baseline transformers one prompt at a time.
* ``fixed``: N same-length prompts; baselines transformers as one left-padded
  batch, and one prompt at a time (on the first few prompts, as a rate).
* ``varied``: N requests of random prompt and output lengths; the metric is
  *useful* tokens/s (prompt tokens + requested output tokens). Transformers
  runs one padded batch generating the longest output for everyone.

Generated tokens only count for ``single`` and ``fixed``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import Any

import torch
from common import (
    SCALES,
    Result,
    Workload,
    hf_generate,
    hf_sequential,
    kv_bytes_per_token,
    load_hf_model,
    machine_info,
    make_workloads,
    num_cores,
    timed,
    token_pool,
)

from llmos.drivers.loaders.cache import cache_folder
from llmos.drivers.loaders.registry import load_checkpoint, resolve
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.sampling import SamplingParams

MODEL = "smollm2"
DTYPES = ["bfloat16", "float32"]
WORKLOADS = ["single", "fixed", "varied"]
# (workload, system, baseline system, minimum ratio)
TARGETS = [
    ("single", "llmos", "hf-sequential", 1.5),
    ("fixed", "llmos", "hf-padded", 1.5),
    ("varied", "llmos", "hf-padded", 3.0),
]
CONTENDED = 0.25  # other-cpu (cores) above which a row is flagged


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=[*DTYPES, "both"], default="both")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    size.add_argument("--tiny", action="store_true", help="minimal workloads (tests only)")
    ap.add_argument("--data-dir", type=Path, default=None, help="llmos data dir (model cache)")
    ap.add_argument("--threads", type=int, default=num_cores())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="time each run N times, keep the best")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown or not args.workloads:
        ap.error(f"--workloads: choose from {','.join(WORKLOADS)} (got {args.workloads})")
    args.dtypes = DTYPES if args.dtype == "both" else [args.dtype]
    args.scale = "tiny" if args.tiny else "quick" if args.quick else "full"
    return args


def greedy(max_tokens: int) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)


def run_ours(engine: Engine, work: Workload) -> tuple[int, int]:
    """Run ``work`` through the engine; return (generated tokens, preemptions)."""
    done = engine.generate(work.prompts, [greedy(n) for n in work.outputs])
    for completion, want in zip(done, work.outputs, strict=True):
        if len(completion.token_ids) != want:
            raise RuntimeError(f"llmos generated {len(completion.token_ids)} tokens, asked {want}")
    return sum(len(c.token_ids) for c in done), sum(c.stats.get("num_preemptions", 0) for c in done)


def bench_ours(engine: Engine, work: Workload, baseline: str, repeat: int) -> Result:
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


def kv_budget(workloads: dict[str, Workload], config_json: Path, dtype: str) -> int:
    """Enough KV pool for the largest workload, plus a page of slack per sequence."""
    need = max(w.useful_tokens + 16 * len(w.prompts) for w in workloads.values())
    return max(int(need * kv_bytes_per_token(config_json, dtype) * 1.25), 64 * 1024**2)


def run_dtype(
    dtype: str, args: argparse.Namespace, folder: Path, work: dict[str, Workload]
) -> list[Result]:
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


def ratio(results: list[Result], workload: str, system: str, baseline: str) -> float | None:
    rates = {r.system: r.rate for r in results if r.workload == workload}
    if system not in rates or baseline not in rates:
        return None
    return rates[system] / rates[baseline]


def print_table(dtype: str, results: list[Result]) -> list[dict[str, Any]]:
    print(f"\n== {dtype} ==")
    print(
        f"{'workload':<8} {'system':<18} {'tokens':>7} {'seconds':>8} {'tok/s':>8} "
        f"{'other-cpu':>9}  vs baseline"
    )
    for r in results:
        vs = ""
        if r.baseline and (x := ratio(results, r.workload, r.system, r.baseline)) is not None:
            vs = f"{x:.2f}x {r.baseline}"
        note = "  ".join(f"{k}={v}" for k, v in r.extra.items())
        print(
            f"{r.workload:<8} {r.system:<18} {r.tokens:>7} {r.seconds:>8.2f} {r.rate:>8.1f} "
            f"{r.other_cpu:>9.2f}  {vs}" + (f"  ({note})" if note else "")
        )
    if any(r.other_cpu > CONTENDED for r in results):
        print(
            f"warning: other processes used > {CONTENDED} cores during some rows "
            "(other-cpu); those timings are unreliable, rerun on a quiet machine"
        )
    targets = []
    for workload, system, baseline, minimum in TARGETS:
        x = ratio(results, workload, system, baseline)
        if x is None:
            continue
        verdict = "PASS" if x >= minimum else "MISS"
        print(f"target {workload}: {system}/{baseline} = {x:.2f}x (>= {minimum}x) {verdict}")
        targets.append({"workload": workload, "ratio": x, "minimum": minimum, "verdict": verdict})
    return targets


def describe(workloads: dict[str, Workload], names: list[str]) -> None:
    for name in names:
        w = workloads[name]
        plens = [len(p) for p in w.prompts]
        print(
            f"  {name}: {len(w.prompts)} prompts, prompt tokens {min(plens)}-{max(plens)}, "
            f"output tokens {min(w.outputs)}-{max(w.outputs)}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_checkpoint(MODEL, data_dir=args.data_dir)  # converts the GGUF once; cached after
    folder = cache_folder(resolve(MODEL), args.data_dir)
    scale = SCALES[args.scale]
    pool = token_pool(folder / "tokenizer.json", scale.varied_prompt[1] + scale.prompt_len + 1)
    workloads = make_workloads(pool, scale, args.seed)
    machine = machine_info()
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"{args.threads} threads, python {machine['python']}, load average {machine['loadavg']}"
    )
    print(f"model: {MODEL} ({folder}); scale: {args.scale}; seed {args.seed}")
    describe(workloads, args.workloads)
    report: dict[str, Any] = {
        "machine": machine,
        "model": MODEL,
        "scale": args.scale,
        "seed": args.seed,
        "threads": args.threads,
        "repeat": args.repeat,
        "results": {},
    }
    for dtype in args.dtypes:
        results = run_dtype(dtype, args, folder, workloads)
        targets = print_table(dtype, results)
        rows = [{**vars(r), "tok_s": r.rate} for r in results]
        report["results"][dtype] = {"rows": rows, "targets": targets}
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
