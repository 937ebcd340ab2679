"""The simulated part, and the real model's with ``--real``: their rows and report."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from llmos.kernel.engine import Engine

from harness.models import MODEL
from harness.report import Row
from sched_bench.overhead import NUM_OVERHEAD_PROCS, overheads, simulated_overheads
from sched_bench.report import overhead_rows, policy_rows
from sched_bench.runs import real_config, run_real, run_simulated
from sched_bench.workload import MIXES


def run_parts(args: argparse.Namespace, report: dict[str, Any]) -> list[Row]:
    """The simulated part, then the real one with ``--real``; their rows."""
    suffix = "-quick" if args.quick else ""
    sim_mix, num_steps = MIXES[f"sim{suffix}"], 5 if args.quick else 20
    sim = run_simulated(sim_mix, args.seed)
    sim_overhead = simulated_overheads(num_steps)
    report["sim"] = {
        "mix": asdict(sim_mix),
        "policies": [asdict(f) for f in sim],
        "overhead": [asdict(o) for o in sim_overhead],
    }
    rows = policy_rows("sim", sim) + overhead_rows("sim", sim_overhead)
    if args.real:
        real_mix = MIXES[f"real{suffix}"]
        loaded = Engine.from_model(MODEL, real_config(args, NUM_OVERHEAD_PROCS), args.data_dir)
        try:
            real = run_real(loaded.driver, args, real_mix)
            real_overhead = overheads(loaded, num_steps, None)
        finally:
            loaded.close()
        report["real"] = {
            "mix": asdict(real_mix),
            "policies": [asdict(f) for f in real],
            "overhead": [asdict(o) for o in real_overhead],
        }
        rows += policy_rows("real", real) + overhead_rows("real", real_overhead)
    return rows
