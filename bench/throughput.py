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
import sys
from typing import Any

import torch

from harness.args import add_flags, new_parser, scale_of
from harness.machine import machine_info, machine_line
from harness.models import MODEL, default_model_folder
from harness.report import write_json
from harness.workloads import SCALES, Workload, make_workloads, token_pool
from throughput_bench.report import print_table
from throughput_bench.runs import run_dtype

DTYPES = ["bfloat16", "float32"]
WORKLOADS = ["single", "fixed", "varied"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help``)."""
    ap = new_parser(__doc__)
    ap.add_argument("--dtype", choices=[*DTYPES, "both"], default="both")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    size.add_argument("--tiny", action="store_true", help="minimal workloads (tests only)")
    add_flags(ap, "--data-dir", "--threads", "--seed")
    ap.add_argument("--repeat", type=int, default=1, help="time each run N times, keep the best")
    add_flags(ap, "--json")
    args = ap.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown or not args.workloads:
        ap.error(f"--workloads: choose from {','.join(WORKLOADS)} (got {args.workloads})")
    args.dtypes = DTYPES if args.dtype == "both" else [args.dtype]
    args.scale = scale_of(args)
    return args


def describe(workloads: dict[str, Workload], names: list[str]) -> None:
    """One line per chosen workload: its prompts and their lengths."""
    for name in names:
        w = workloads[name]
        plens = [len(p) for p in w.prompts]
        print(
            f"  {name}: {len(w.prompts)} prompts, prompt tokens {min(plens)}-{max(plens)}, "
            f"output tokens {min(w.outputs)}-{max(w.outputs)}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the chosen workloads in each dtype; print the tables, write the JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = default_model_folder(args.data_dir)
    scale = SCALES[args.scale]
    pool = token_pool(folder / "tokenizer.json", scale.varied_prompt[1] + scale.prompt_len + 1)
    workloads = make_workloads(pool, scale, args.seed)
    machine = machine_info()
    print(machine_line(machine, threads=args.threads, python=True))
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
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
