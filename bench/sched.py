"""Scheduling policies on a mixed workload, in the simulator and on the real default model.

    .venv/bin/python bench/sched.py                   # the simulator only (seconds)
    .venv/bin/python bench/sched.py --quick           # a smaller simulated workload (smoke)
    .venv/bin/python bench/sched.py --real            # + the real model: 168 requests, 43k tokens
    .venv/bin/python bench/sched.py --real --quick    # + 78 real requests, 11k tokens
    .venv/bin/python bench/sched.py --json out.json

The workload: requests arrive over time (Poisson), half short (prompt 16-64
tokens, output 8-32), half long (prompt 128-512, output 64-256); uid 1001
("heavy") sends ten times as many as uid 1002 ("light"), and the light uid alone
asks for about what the engine can serve, so both stay backlogged for a while.
Every policy runs the same requests (same seed), greedy with fixed output lengths.

For each policy: throughput (prompt + output tokens over the makespan), p50/p99
time to first token of the short requests (from their arrival), and each uid's
share of the weighted service (prompt tokens x1, output x2, as ``fair`` counts
them) over the steps in which both uids had requests queued. The baseline is
``fcfs`` on the same workload in the same run. Targets: ``fair`` gives the light
uid >= 45 %; ``mlfq`` cuts the short requests' p99 TTFT >= 3x at throughput
within 10 %.

The simulator is the kernel's own Engine over tests/sim_driver.py's SimDriver, a
cost-model test double of the torch driver (a step costs 25 ms + 1 ms per token,
the default model's figures on the 2-core development CPU; no swap tier, so
victims are recomputed): deterministic, seconds to run. ``--real`` runs the same
mix (over a shorter time) on SmolLM2-135M in-process, arrivals on the wall clock;
every policy gets a fresh engine (its own pages and prefix cache) on one loaded model.

Scheduler overhead: the time per step in ``Scheduler.schedule()`` plus
``account_step`` (timed by wrapping both) with 64 processes decoding, against
the whole step: the real model's step with ``--real``, else the simulator's
modelled step (the kernel's own work is then measured for real, the model's is not).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.models import use_test_helpers

use_test_helpers()  # the simulator is the tests' test double

from harness.args import add_flags, new_parser  # noqa: E402
from harness.machine import machine_info, machine_line  # noqa: E402
from harness.report import print_table, row_dicts, write_json  # noqa: E402
from sched_bench.parts import run_parts  # noqa: E402
from sched_bench.report import COLUMNS, print_notes  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help``)."""
    ap = new_parser(__doc__)
    ap.add_argument("--real", action="store_true", help="also run the real default model")
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    add_flags(ap, "--dtype", "--seed", "--data-dir", "--json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the parts; print the table and its notes, write the JSON."""
    args = parse_args(argv)
    info = machine_info()
    print(machine_line(info))
    report: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    rows = run_parts(args, report)
    print_table(rows, COLUMNS)
    print()
    print_notes(report)
    report["rows"] = row_dicts(rows, value_key="value")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
