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
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the simulator is the tests' test double

from common import busy_cpu_seconds, machine_info  # noqa: E402
from sim_driver import (  # noqa: E402
    Request,
    SimDriver,
    SimResult,
    Simulation,
    WorkloadRun,
)

from llmos.kernel import accounting  # noqa: E402
from llmos.kernel.config import EngineConfig  # noqa: E402
from llmos.kernel.engine import Engine  # noqa: E402
from llmos.syscalls.sampling import SamplingParams  # noqa: E402

MODEL = "smollm2"
POLICIES = ("fcfs", "priority", "fair", "mlfq")
HEAVY, LIGHT = 1001, 1002
FAIR_SHARE_TARGET = 0.45
TTFT_CUT_TARGET = 3.0
THROUGHPUT_FLOOR = 0.9
OVERHEAD_TARGET = 0.05
NUM_OVERHEAD_PROCS = 64


@dataclass(frozen=True)
class Mix:
    """The workload: how long requests arrive, how many per second, their sizes."""

    duration: float
    rate: float  # requests per second, both uids together
    max_num_seqs: int = 32
    light_fraction: float = 1 / 11  # a 10:1 load
    short_fraction: float = 0.5
    short: tuple[tuple[int, int], tuple[int, int]] = ((16, 64), (8, 32))  # prompt, output
    long: tuple[tuple[int, int], tuple[int, int]] = ((128, 512), (64, 256))


MIXES = {
    "sim": Mix(duration=20.0, rate=32.0),
    "sim-quick": Mix(duration=8.0, rate=32.0),
    "real": Mix(duration=5.0, rate=32.0),
    "real-quick": Mix(duration=2.0, rate=32.0, long=((64, 256), (32, 128))),
}


def make_workload(mix: Mix, seed: int) -> list[Request]:
    """Poisson arrivals over ``mix.duration`` seconds (seeded)."""
    rng = random.Random(seed)
    requests: list[Request] = []
    arrival = rng.expovariate(mix.rate)
    while arrival < mix.duration:
        uid = LIGHT if rng.random() < mix.light_fraction else HEAVY
        is_short = rng.random() < mix.short_fraction
        (prompt, output), label = (mix.short, "short") if is_short else (mix.long, "long")
        size = rng.randint(*prompt), rng.randint(*output)
        requests.append(Request(arrival, *size, uid=uid, label=label))
        arrival += rng.expovariate(mix.rate)
    return requests


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """One policy's run of the workload."""

    policy: str
    throughput: float  # tokens/s
    ttft_p50: float
    ttft_p99: float
    light_share: float
    num_backlogged_steps: int
    num_preemptions: int
    seconds: float
    num_steps: int
    other_cpu: float = 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


def figures(policy: str, result: SimResult, other_cpu: float = 0.0) -> Figures:
    assert result.is_complete, f"{policy}: the workload did not finish"
    ttfts = [o.ttft for o in result.outcomes if o.request.label == "short"]
    return Figures(
        policy=policy,
        throughput=result.throughput,
        ttft_p50=percentile(ttfts, 0.5),
        ttft_p99=percentile(ttfts, 0.99),
        light_share=result.backlogged_share(LIGHT),
        num_backlogged_steps=result.num_backlogged_steps,
        num_preemptions=result.num_preemptions,
        seconds=result.seconds,
        num_steps=result.num_steps,
        other_cpu=other_cpu,
    )


def other_cpu_meter() -> Callable[[], float]:
    """Cores other processes use from now on (noise on this machine)."""
    busy, cpu, start = busy_cpu_seconds(), time.process_time(), time.perf_counter()

    def read() -> float:
        others = busy_cpu_seconds() - busy - (time.process_time() - cpu)
        return max(others, 0.0) / max(time.perf_counter() - start, 1e-9)

    return read


# --- the simulator and the real model ------------------------------------------------------


def run_simulated(mix: Mix, seed: int) -> list[Figures]:
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
        return time.perf_counter() - self.start

    def wait_until(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds - self.now()))


def real_config(args: argparse.Namespace, max_num_seqs: int, policy: str = "fcfs") -> EngineConfig:
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


# --- scheduler overhead ----------------------------------------------------------------------


@dataclass
class Timers:
    """Seconds per call, one entry per step."""

    schedule: list[float] = field(default_factory=list)
    accounting: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)


@contextlib.contextmanager
def kernel_timers(engine: Engine) -> Iterator[Timers]:
    """Time ``engine``'s calls of Scheduler.schedule and account_step (instrumentation for
    this benchmark: both are wrapped for the ``with`` block)."""
    timers = Timers()
    schedule, account = engine.scheduler.schedule, accounting.account_step

    def timed_schedule() -> Any:
        start = time.perf_counter()
        plan = schedule()
        timers.schedule.append(time.perf_counter() - start)
        return plan

    def timed_account(*args: Any) -> None:
        start = time.perf_counter()
        account(*args)
        timers.accounting.append(time.perf_counter() - start)

    with (
        mock.patch.object(engine.scheduler, "schedule", timed_schedule),
        mock.patch("llmos.kernel.engine.account_step", timed_account),
    ):
        yield timers


@dataclass
class Overhead:
    policy: str
    schedule_us: float
    accounting_us: float
    step_ms: float  # the step the overhead is measured against
    kernel_step_ms: float  # the whole engine step as measured (the model's share included)

    @property
    def share(self) -> float:
        return (self.schedule_us + self.accounting_us) / 1e3 / self.step_ms


def measure_overhead(engine: Engine, policy: str, num_steps: int) -> Timers:
    """Time ``num_steps`` decode steps of ``engine`` with 64 processes running."""
    engine.set_policy(policy)
    with kernel_timers(engine) as timers:
        for _ in range(num_steps):
            start = time.perf_counter()
            engine.step()
            timers.steps.append(time.perf_counter() - start)
    assert len(engine.scheduler.running) == NUM_OVERHEAD_PROCS
    return timers


def fill(engine: Engine, num_steps: int) -> None:
    """64 processes, each past its prefill with ``num_steps`` + more tokens to go."""
    params = SamplingParams(max_tokens=8 + 5 * num_steps, ignore_eos=True)
    procs = [engine.add([7 + i % 200] * 32, params) for i in range(NUM_OVERHEAD_PROCS)]
    while any(p.num_sampled == 0 for p in procs):
        engine.step()


def overheads(engine: Engine, num_steps: int, modelled_ms: float | None) -> list[Overhead]:
    """Median per-step figures for each policy, on the same 64 running processes."""
    fill(engine, len(POLICIES) * num_steps)
    found = []
    for policy in POLICIES:
        timers = measure_overhead(engine, policy, num_steps)
        step_ms = 1e3 * statistics.median(timers.steps)
        found.append(
            Overhead(
                policy,
                1e6 * statistics.median(timers.schedule),
                1e6 * statistics.median(timers.accounting),
                modelled_ms if modelled_ms is not None else step_ms,
                step_ms,
            )
        )
    return found


def simulated_overheads(num_steps: int) -> list[Overhead]:
    driver = SimDriver()
    engine = Engine(driver, EngineConfig(max_num_seqs=NUM_OVERHEAD_PROCS))  # type: ignore[arg-type]
    return overheads(engine, num_steps, 1e3 * driver.cost.seconds(NUM_OVERHEAD_PROCS))


# --- the report ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: our figure, fcfs's on the same workload, the target."""

    metric: str
    unit: str
    value: float
    baseline: float | None
    target: str = "-"
    passed: bool | None = None
    other_cpu: float = 0.0

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None

    @property
    def verdict(self) -> str:
        return "-" if self.passed is None else "PASS" if self.passed else "MISS"


def policy_rows(part: str, runs: list[Figures]) -> list[Row]:
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


def number(value: float | None) -> str:
    if value is None:
        return "-"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def print_table(rows: list[Row]) -> None:
    print(
        f"\n{'metric':<46} {'unit':>6} {'llmos':>9} {'fcfs':>9} {'ratio':>7} "
        f"{'target':>9} {'result':>6} {'other-cpu':>9}"
    )
    for row in rows:
        ratio = "-" if row.ratio is None else f"{row.ratio:.3g}x"
        print(
            f"{row.metric:<46} {row.unit:>6} {number(row.value):>9} {number(row.baseline):>9} "
            f"{ratio:>7} {row.target:>9} {row.verdict:>6} {row.other_cpu:>9.2f}"
        )


def print_notes(report: dict[str, Any]) -> None:
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", action="store_true", help="also run the real default model")
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=None, help="llmos data dir (model cache)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    return ap.parse_args(argv)


def run_parts(args: argparse.Namespace, report: dict[str, Any]) -> list[Row]:
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
        f"load average {info['loadavg']}"
    )
    report: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    rows = run_parts(args, report)
    print_table(rows)
    print()
    print_notes(report)
    report["rows"] = [{**asdict(r), "ratio": r.ratio, "verdict": r.verdict} for r in rows]
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
