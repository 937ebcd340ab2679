"""Syscall latency and throughput of the kernel against a bare echo server, and streaming overhead.

    .venv/bin/python bench/syscalls.py                  # everything, on the default model
    .venv/bin/python bench/syscalls.py --quick          # fewer calls, a smaller workload
    .venv/bin/python bench/syscalls.py --quick --tiny   # the tiny random test model (smoke)
    .venv/bin/python bench/syscalls.py --parts rpc --repeat 3 --json out.json

``rpc``: the null syscall. The floor is a bare uvloop server on a Unix socket
with the kernel's framing (4-byte big-endian length + msgpack): it decodes each
request with the kernel's msgspec decoder and answers a canned ``sysinfo``
reply of the same shape. The kernel (``python -m llmos.kernel``, no model) is
measured the same way: a blocking raw-socket client in its own process says
``hello``, then does ``sysinfo`` round trips (p50/p99 latency and calls/s), and
1 or 16 such clients run for a fixed time (total calls/s). The SDK's
``Client.sysinfo()`` is reported on its own: it adds the client's reader thread.

``streaming``: the varied workload of bench/throughput.py (greedy, fixed
output lengths) run in-process with ``Engine.generate`` and through a kernel
with every request a ``run`` stream of one AsyncClient, consumed concurrently.

Every server and client is a separate process. The ``other-cpu`` figures are
the cores other processes kept busy meanwhile; above 0.25 the run is flagged.
On a busy machine libgomp's spin-waiting at each op's barrier can make the
in-process baseline collapse; ``GOMP_SPINCOUNT=0`` (the kernel inherits it)
puts both sides on the same footing there. ``--tiny`` builds the tiny random
model of tests/tinymodels.py and uses the smallest workload.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.args import add_flags, new_parser, scale_of
from harness.machine import load_average, machine_info, machine_line
from harness.report import write_json
from syscall_bench.report import print_rpc, print_streaming
from syscall_bench.rpc import bench_rpc
from syscall_bench.streaming import bench_streaming


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help``)."""
    ap = new_parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer calls, a smaller workload")
    ap.add_argument("--tiny", action="store_true", help="tiny random model, smallest workload")
    ap.add_argument("--parts", default="rpc,streaming", help="comma-separated: rpc, streaming")
    add_flags(ap, "--dtype")
    ap.add_argument("--repeat", type=int, default=1, help="run N times, report the medians")
    add_flags(ap, "--seed", "--data-dir", "--json")
    args = ap.parse_args(argv)
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts or args.parts - {"rpc", "streaming"}:
        ap.error(f"--parts: choose from rpc,streaming (got {sorted(args.parts)})")
    args.scale = scale_of(args)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts; print their tables and targets, write the JSON."""
    args = parse_args(argv)
    info = machine_info()
    print(
        f"{machine_line(info, torch=False, python=True)}; sizes: {args.scale}, repeat {args.repeat}"
    )
    report: dict[str, Any] = {"machine": info, "scale": args.scale, "repeat": args.repeat}
    targets: list[dict[str, Any]] = []
    if "rpc" in args.parts:
        report["rpc"] = bench_rpc(args)
        targets += print_rpc(report["rpc"])
        sys.stdout.flush()
    if "streaming" in args.parts:
        report["streaming"] = bench_streaming(args)
        targets += print_streaming(report["streaming"])
    report["targets"] = targets
    print(f"load average after: {load_average()}")
    write_json(args.json, report, gap="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
