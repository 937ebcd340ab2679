"""bench/sched.py runs its simulator part end to end and prints its table."""

from __future__ import annotations

import re
from pathlib import Path

from benchrun import run_bench

POLICIES = ("fcfs", "priority", "fair", "mlfq")
METRICS = ("throughput", "short TTFT p50", "short TTFT p99", "light uid share")
NUMBER = r"[\d,.]+"
FIGURES = rf"\S+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+.*(PASS|MISS|-)"  # unit, ours, fcfs, ratio


def test_sched_bench_smoke(tmp_path: Path) -> None:
    text, report = run_bench(tmp_path, "sched.py", "--quick", timeout=60)
    header = r"^metric\s+unit\s+llmos\s+fcfs\s+ratio\s+target\s+result\s+other-cpu$"
    assert re.search(header, text, re.M), text
    for policy in POLICIES:
        for metric in METRICS:
            row = rf"^sim {policy} {metric}\s+{FIGURES}"
            assert re.search(row, text, re.M), f"no row {policy} {metric}:\n{text}"
        overhead = rf"^sim {policy} scheduler overhead, 64 running\s+%\s+{NUMBER}\s+.*(PASS|MISS)"
        assert re.search(overhead, text, re.M), text
    assert {row["verdict"] for row in report["rows"]} <= {"PASS", "MISS", "-"}
    runs = {f["policy"]: f for f in report["sim"]["policies"]}
    # the simulator is deterministic: these orderings are the policies' own doing
    assert runs["fair"]["light_share"] > 3 * runs["fcfs"]["light_share"]
    assert runs["mlfq"]["ttft_p99"] < runs["fcfs"]["ttft_p99"] / 3
    assert runs["fcfs"]["num_preemptions"] == 0
    assert all(o["schedule_us"] > 0 for o in report["sim"]["overhead"])
