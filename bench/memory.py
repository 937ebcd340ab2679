"""Virtual memory of the engine: fork, copy-on-write, swap, resume, fragmentation, prefix cache.

    .venv/bin/python bench/memory.py                    # everything, default model, bfloat16
    .venv/bin/python bench/memory.py --dtype float32
    .venv/bin/python bench/memory.py --quick            # fewer repeats, smaller sizes
    .venv/bin/python bench/memory.py --quick --tiny     # the tiny random test model (smoke)
    .venv/bin/python bench/memory.py --json out.json
    .venv/bin/python bench/memory.py --quick --sections swap   # only these sections

Every figure sits beside a baseline measured in the same run:

1. ``fork`` of a prefilled process (median of many; the child is killed between
   forks), against copying its KV bytes (a fork without copy-on-write); for
   several context lengths, to show the cost follows pages.
2. Distinct device frames held by a process of ``cow_context`` tokens and 8 fork
   children after each decoded a few tokens, against the frames of that one process.
3. Page-out and page-in (``STOP``; ``CONT`` + page-in + ``move_pages``) of a
   process, device<->host and device<->disk, in GB/s, against
   ``torch.empty_like(x).copy_(x)`` of the same bytes. The host tier is sized to
   hold one such process, so a second one stopped goes to disk.
4. Resuming that process from the disk swap tier, and from a hibernation image
   (``read_image`` + ``restore`` + ``CONT`` + page-in, each timed), against
   reading the same bytes from a file into a tensor. Target: llama.cpp's ~43 ms
   slot restore.
5. Internal fragmentation (``kernel.vmstat.fragmentation``) sampled every step of
   the varied workload, against reserving prompt + max_tokens per request up front.
6. Tokens/s of the varied workload with the prefix cache on against off, every
   prompt distinct (0 % hits), interleaved runs. As that difference is within
   this machine's noise, the same runs are repeated on a model-free test-double
   driver (the kernel alone: scheduler, page tables, prefix cache) and the
   cache's extra bookkeeping is given as a share of the real run. Then a
   workload sharing a long system prompt (hit rate, speed-up).

Section 6 (and 5, sampled in the same runs) goes first, on two freshly loaded
engines alike but for ``prefix_cache``; sections 1-4 then share a third, freshly
loaded engine of the default configuration (cache on). The CPU is both "device" and "host" here;
the disk tier and the image file are read back from the page cache. Figures
from a busy machine are noisy: the ``other-cpu`` column gives the cores other
processes used during each section.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from harness.args import add_flags, new_parser, scale_of
from harness.machine import machine_info, machine_line
from harness.models import MODEL
from harness.report import print_table, row_dicts, write_json
from memory_bench.notes import print_notes
from memory_bench.sections import SECTIONS, run_sections
from memory_bench.sizes import SIZES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help``)."""
    ap = new_parser(__doc__)
    add_flags(ap, "--dtype")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    ap.add_argument("--tiny", action="store_true", help="the tiny random test model, tiny sizes")
    ap.add_argument("--repeat", type=int, default=None, help="interleaved workload runs each")
    add_flags(ap, "--threads", "--seed", "--data-dir", "--json")
    ap.add_argument(
        "--sections",
        nargs="+",
        choices=list(SECTIONS),
        default=list(SECTIONS),
        help="run only these sections (default: all)",
    )
    args = ap.parse_args(argv)
    args.scale = scale_of(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections; print the table and its notes, write the JSON."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the swap files too
    torch.set_num_threads(args.threads)
    sizes = SIZES[args.scale]
    if args.repeat:
        sizes = replace(sizes, num_runs=args.repeat)
    info = machine_info()
    print(machine_line(info, threads=args.threads))
    print(
        f"model: {'tiny-random-llama' if args.tiny else MODEL}, {args.dtype}; sizes: "
        f"{args.scale}; {sizes.num_runs} interleaved runs per workload"
    )
    report: dict[str, Any] = {
        "machine": info,
        "dtype": args.dtype,
        "scale": args.scale,
        "sizes": asdict(sizes),
    }
    folder = Path(tempfile.mkdtemp(prefix="llmos-bench-memory-"))
    try:
        rows = run_sections(args, sizes, folder, report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print_table(rows)
    print_notes(report)
    report["rows"] = row_dicts(rows)
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
