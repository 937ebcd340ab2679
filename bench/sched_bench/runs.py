"""Every policy on the workload: in the simulator, and on the real model on the wall clock."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sim_driver import Simulation, WorkloadRun

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine

from harness.contention import other_cpu_meter
from sched_bench.figures import Figures, figures
from sched_bench.workload import POLICIES, Mix, make_workload


def run_simulated(mix: Mix, seed: int) -> list[Figures]:
    """Every policy in the simulator on one seeded workload."""
    workload = make_workload(mix, seed)
    found = []
    for policy in POLICIES:
        sim = Simulation(policy, workload, max_num_seqs=mix.max_num_seqs)
        found.append(figures(policy, sim.run()))
    return found


class WallClock:
    """Real seconds since the run started; waiting sleeps."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def now(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def wait_until(self, seconds: float) -> None:
        """Sleep until ``seconds`` after the start."""
        time.sleep(max(0.0, seconds - self.now()))


def real_config(args: argparse.Namespace, max_num_seqs: int, policy: str = "fcfs") -> EngineConfig:
    """The real model's engine settings for ``policy``."""
    return EngineConfig(
        dtype=args.dtype, max_num_seqs=max_num_seqs, kv_budget=1 << 30, sched=policy
    )


def run_real(driver: Any, args: argparse.Namespace, mix: Mix) -> list[Figures]:
    """Each policy on a fresh engine (own pages, own prefix cache) over one loaded model."""
    workload = make_workload(mix, args.seed)
    # Warm up on the whole workload, untimed: oneDNN builds a kernel for every new batch
    # shape, and the first policy would otherwise pay for all of them.
    WorkloadRun(Engine(driver, real_config(args, mix.max_num_seqs)), workload, WallClock()).run()
    found = []
    for policy in POLICIES:
        engine = Engine(driver, real_config(args, mix.max_num_seqs, policy))
        meter = other_cpu_meter()
        result = WorkloadRun(engine, workload, WallClock()).run()
        found.append(figures(policy, result, meter()))
        print(f"  real {policy}: {result.seconds:.0f} s, other-cpu {meter():.2f}", flush=True)
    return found
