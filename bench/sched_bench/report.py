"""bench/sched.py's rows against fcfs, its table's layout, and the notes under it."""

from __future__ import annotations

from typing import Any

from harness.report import Columns, Row
from sched_bench.figures import Figures
from sched_bench.overhead import NUM_OVERHEAD_PROCS, Overhead

FAIR_SHARE_TARGET = 0.45
TTFT_CUT_TARGET = 3.0
THROUGHPUT_FLOOR = 0.9
OVERHEAD_TARGET = 0.05
COLUMNS = Columns(baseline="fcfs", metric_width=46, target_width=9, is_small_exact=False)


def policy_rows(part: str, runs: list[Figures]) -> list[Row]:
    """Each policy's rows against fcfs's on the same workload."""
    base = next(f for f in runs if f.policy == "fcfs")
    rows = []
    for f in runs:
        name, cpu = f"{part} {f.policy}", f.other_cpu
        is_mlfq, is_fair = f.policy == "mlfq", f.policy == "fair"
        thr_ok = f.throughput >= THROUGHPUT_FLOOR * base.throughput if is_mlfq else None
        p99_ok = base.ttft_p99 >= TTFT_CUT_TARGET * f.ttft_p99 if is_mlfq else None
        rows += [
            Row(f"{name} throughput", "tok/s", f.throughput, base.throughput,
                ">= 0.9x" if is_mlfq else "-", thr_ok, cpu),
            Row(f"{name} short TTFT p50", "s", f.ttft_p50, base.ttft_p50, other_cpu=cpu),
            Row(f"{name} short TTFT p99", "s", f.ttft_p99, base.ttft_p99,
                "<= 0.33x" if is_mlfq else "-", p99_ok, cpu),
            Row(f"{name} light uid share", "%", 100 * f.light_share, 100 * base.light_share,
                ">= 45 %" if is_fair else "-",
                f.light_share >= FAIR_SHARE_TARGET if is_fair else None, cpu),
        ]  # fmt: skip
    return rows


def overhead_rows(part: str, found: list[Overhead]) -> list[Row]:
    """Each policy's scheduler overhead against the target."""
    return [
        Row(
            f"{part} {o.policy} scheduler overhead, {NUM_OVERHEAD_PROCS} running",
            "%",
            100 * o.share,
            None,
            "< 5 %",
            o.share < OVERHEAD_TARGET,
        )
        for o in found
    ]


def print_notes(report: dict[str, Any]) -> None:
    """Steps, preemptions and backlog of each run; the overhead's parts."""
    for part in ("sim", "real"):
        for f in report.get(part, {}).get("policies", []):
            print(
                f"{part} {f['policy']:<8}: {f['num_steps']} steps, {f['seconds']:.1f} s, "
                f"{f['num_preemptions']} preemptions, both uids backlogged in "
                f"{f['num_backlogged_steps']} steps"
            )
        for o in report.get(part, {}).get("overhead", []):
            print(
                f"{part} {o['policy']:<8}: schedule {o['schedule_us']:.0f} us + accounting "
                f"{o['accounting_us']:.0f} us per step; step {o['step_ms']:.1f} ms "
                f"(engine step as measured {o['kernel_step_ms']:.2f} ms)"
            )
