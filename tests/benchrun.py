"""Running a bench script as its users do, for the smoke tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_bench(tmp_path: Path, script: str, *args: str, timeout: float) -> tuple[str, Any]:
    """Run ``bench/<script> <args> --json <file>``; assert it exits 0; return what it printed
    and the figures it wrote."""
    out = tmp_path / "figures.json"
    command = [sys.executable, str(REPO / "bench" / script), *args, "--json", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())
