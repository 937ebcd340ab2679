"""The machine a benchmark ran on: CPU, cores, library versions, load."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def num_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, torch and its threads, python, load average: the report's ``machine``."""
    import torch  # here, not above: spawned syscall clients import this module

    return {
        "cpu": cpu_name(),
        "cores": num_cores(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg": load_average(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_line(
    info: dict[str, Any], *, torch: bool = True, threads: int | None = None, python: bool = False
) -> str:
    """``machine: CPU, N cores[, torch V][, T threads][, python V], load average [..]``."""
    parts = [f"machine: {info['cpu']}", f"{info['cores']} cores"]
    if torch:
        parts.append(f"torch {info['torch']}")
    if threads is not None:
        parts.append(f"{threads} threads")
    if python:
        parts.append(f"python {info['python']}")
    parts.append(f"load average {info['loadavg']}")
    return ", ".join(parts)
