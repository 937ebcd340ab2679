"""One policy's figures from a run of the workload."""

from __future__ import annotations

from dataclasses import dataclass

from sim_driver import SimResult

from harness.stats import percentile
from sched_bench.workload import LIGHT


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


def figures(policy: str, result: SimResult, other_cpu: float = 0.0) -> Figures:
    """The figures of ``policy``'s finished run."""
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
