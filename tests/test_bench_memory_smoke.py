"""bench/memory.py runs end to end on the tiny random model and prints its table."""

from __future__ import annotations

import re
from pathlib import Path

from benchrun import run_bench

SECTIONS = [
    r"fork, \d+-token process \(\d+ pages\)",
    r"8 forks of \d+ tokens \(\+\d+ each\)",
    r"page device->host \([\d.]+ MB\)",
    r"page device->disk \([\d.]+ MB\)",
    r"page host->device \([\d.]+ MB\)",
    r"page disk->device \([\d.]+ MB\)",
    r"resume \d+ tokens from disk swap",
    r"resume \d+ tokens from hibernation image",
    r"fragmentation, varied \(\d+\), mean",
    r"prefix cache on, 0 % hits, varied \(\d+\)",
    r"prefix cache on, shared \d+-token system prompt \(\d+\)",
]
NUMBER = r"[\d,.]+"


def test_memory_bench_smoke(tmp_path: Path) -> None:
    args = ["--quick", "--tiny", "--data-dir", str(tmp_path / "data")]
    text, report = run_bench(tmp_path, "memory.py", *args, timeout=55)
    header = r"^metric\s+unit\s+llmos\s+baseline\s+ratio\s+target\s+result\s+other-cpu$"
    assert re.search(header, text, re.M), text
    for metric in SECTIONS:
        row = rf"^{metric}\s+\S+\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+.+\s(PASS|MISS|-)\s+[\d.]+$"
        assert re.search(row, text, re.M), f"no row {metric!r} in:\n{text}"
    verdicts = {row["metric"]: row["verdict"] for row in report["rows"]}
    assert len(verdicts) == len(report["rows"]) >= len(SECTIONS)
    assert set(verdicts.values()) <= {"PASS", "MISS", "-"}
    assert report["cow"]["frames_family"] == report["cow"]["num_used_delta"]
    assert all(s["fork_us"] > 0 and s["pages"] > 0 for s in report["fork_scaling"])
    shared = report["workloads"]["on"]["shared"]
    assert all(run["cached_token_share"] > 0 for run in shared)  # the system prompt hit
