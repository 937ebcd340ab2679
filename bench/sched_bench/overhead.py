"""The scheduler's overhead: ``schedule()`` and ``account_step`` timed inside real steps."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from sim_driver import SimDriver

from llmos.kernel import accounting
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.sampling import SamplingParams

from sched_bench.workload import POLICIES

NUM_OVERHEAD_PROCS = 64


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
    """One policy's per-step kernel time against the step's."""

    policy: str
    schedule_us: float
    accounting_us: float
    step_ms: float  # the step the overhead is measured against
    kernel_step_ms: float  # the whole engine step as measured (the model's share included)

    @property
    def share(self) -> float:
        """The scheduler's and accounting's share of the step."""
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
    """Overheads in the simulator, against its modelled step of 64 processes."""
    driver = SimDriver()
    engine = Engine(driver, EngineConfig(max_num_seqs=NUM_OVERHEAD_PROCS))  # type: ignore[arg-type]
    return overheads(engine, num_steps, 1e3 * driver.cost.seconds(NUM_OVERHEAD_PROCS))
