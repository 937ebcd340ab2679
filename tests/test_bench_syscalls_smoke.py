"""bench/syscalls.py runs end to end (smallest sizes, tiny random model) and prints its table."""

from __future__ import annotations

import re
from pathlib import Path

from benchrun import run_bench

RATE = r"[\d,]+"
MICROS = r"[\d.]+"
RATIO = r"[\d.]+x"


def test_syscalls_bench_smoke(tmp_path: Path) -> None:
    text, report = run_bench(tmp_path, "syscalls.py", "--quick", "--tiny", timeout=240)
    assert re.search(r"^metric\s+echo floor\s+kernel\s+ratio$", text, re.M), text
    for label, value in [
        (r"latency p50 \(us\)", MICROS),
        (r"latency p99 \(us\)", MICROS),
        (r"calls/s, 1 client", RATE),
        (r"calls/s, 16 clients", RATE),
    ]:
        assert re.search(rf"^{label}\s+{value}\s+{value}\s+{RATIO}$", text, re.M), (label, text)
    assert re.search(rf"^SDK Client.sysinfo p50 \(us\)\s+-\s+{MICROS}\s", text, re.M), text
    assert re.search(r"^target p50 vs floor: [\d.]+x \(<= 1.5x\) (PASS|MISS)$", text, re.M), text
    assert re.search(r"^target calls/s, 16 clients: [\d,]+ \(>= 20,000\) (PASS|MISS)$", text, re.M)
    assert re.search(
        r"^target streaming tokens/s lost: -?[\d.]+% \(<= 5.0%\) (PASS|MISS)$", text, re.M
    )
    for side in ("echo", "kernel"):
        figures = report["rpc"][side]
        assert all(figures[k] > 0 for k in ("p50_us", "p99_us", "calls_s_1", "calls_s_16"))
    assert report["rpc"]["kernel"]["sdk_p50_us"] > 0
    streaming = report["streaming"]
    assert streaming["in_process_tok_s"] > 0 and streaming["kernel_tok_s"] > 0
    assert [t["target"] for t in report["targets"]] == [
        "p50 vs floor",
        "calls/s, 16 clients",
        "streaming tokens/s lost",
    ]
