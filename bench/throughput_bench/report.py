"""Throughput results: one row per system and workload, the table, the targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.contention import CONTENDED

# (workload, system, baseline system, minimum ratio)
TARGETS = [
    ("single", "llmos", "hf-sequential", 1.5),
    ("fixed", "llmos", "hf-padded", 1.5),
    ("varied", "llmos", "hf-padded", 3.0),
]


@dataclass
class Result:
    """One system's run of one workload."""

    workload: str
    system: str
    tokens: int
    seconds: float
    other_cpu: float = 0.0  # cores other processes used meanwhile (contention)
    baseline: str | None = None  # system this row is compared against
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")


def ratio(results: list[Result], workload: str, system: str, baseline: str) -> float | None:
    """``system``'s rate over ``baseline``'s on ``workload``; None if either is missing."""
    rates = {r.system: r.rate for r in results if r.workload == workload}
    if system not in rates or baseline not in rates:
        return None
    return rates[system] / rates[baseline]


def print_table(dtype: str, results: list[Result]) -> list[dict[str, Any]]:
    """The results of one dtype, a warning if contended, then the targets (returned)."""
    print(f"\n== {dtype} ==")
    print(
        f"{'workload':<8} {'system':<18} {'tokens':>7} {'seconds':>8} {'tok/s':>8} "
        f"{'other-cpu':>9}  vs baseline"
    )
    for r in results:
        vs = ""
        if r.baseline and (x := ratio(results, r.workload, r.system, r.baseline)) is not None:
            vs = f"{x:.2f}x {r.baseline}"
        note = "  ".join(f"{k}={v}" for k, v in r.extra.items())
        print(
            f"{r.workload:<8} {r.system:<18} {r.tokens:>7} {r.seconds:>8.2f} {r.rate:>8.1f} "
            f"{r.other_cpu:>9.2f}  {vs}" + (f"  ({note})" if note else "")
        )
    if any(r.other_cpu > CONTENDED for r in results):
        print(
            f"warning: other processes used > {CONTENDED} cores during some rows "
            "(other-cpu); those timings are unreliable, rerun on a quiet machine"
        )
    return print_targets(results)


def print_targets(results: list[Result]) -> list[dict[str, Any]]:
    """Each target whose rows ran: ``target W: S/B = Rx (>= Mx) PASS|MISS``."""
    targets = []
    for workload, system, baseline, minimum in TARGETS:
        x = ratio(results, workload, system, baseline)
        if x is None:
            continue
        verdict = "PASS" if x >= minimum else "MISS"
        print(f"target {workload}: {system}/{baseline} = {x:.2f}x (>= {minimum}x) {verdict}")
        targets.append({"workload": workload, "ratio": x, "minimum": minimum, "verdict": verdict})
    return targets
