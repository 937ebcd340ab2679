"""The ``rpc`` part: the null syscall on the echo floor and on the kernel, in alternation."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from harness.contention import contended
from harness.stats import median_figures
from syscall_bench.clients import (
    in_processes,
    rate_worker,
    raw_latency_worker,
    sdk_latency_worker,
)
from syscall_bench.servers import SPAWN, echo_server, kernel_daemon

NUM_CLIENTS = (1, 16)
SIZES = {"full": (20_000, 3.0), "quick": (2_000, 1.0)}  # latency calls, seconds per rate run


def measure_rate(path: Path, num_clients: int, seconds: float) -> float:
    """Total calls/s of ``num_clients`` clients at once."""
    barrier = SPAWN.Barrier(num_clients)
    counts: list[int] = in_processes(rate_worker, num_clients, str(path), seconds, barrier)
    return sum(counts) / seconds


def rpc_figures(path: Path, num_calls: int, seconds: float, sdk: bool) -> dict[str, float]:
    """Raw latency, the rates, and the SDK's latency with ``sdk``."""
    figures: dict[str, float] = in_processes(raw_latency_worker, 1, str(path), num_calls)[0]
    for num_clients in NUM_CLIENTS:
        figures[f"calls_s_{num_clients}"] = measure_rate(path, num_clients, seconds)
    if sdk:
        sdk_figures = in_processes(sdk_latency_worker, 1, str(path), num_calls)[0]
        figures.update({f"sdk_{k}": v for k, v in sdk_figures.items()})
    return figures


def measure_rpc(path: Path, num_calls: int, seconds: float, sdk: bool) -> dict[str, float]:
    """Latency and rates on one server (the SDK's too with ``sdk``), and the contention."""
    figures, other = contended(lambda: rpc_figures(path, num_calls, seconds, sdk))
    return {**figures, "other_cpu": other}


def bench_rpc(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The floor and the kernel, measured in alternation ``--repeat`` times."""
    num_calls, seconds = SIZES["quick" if args.quick else "full"]
    folder = Path(tempfile.mkdtemp(prefix="llmos-b-", dir="/tmp"))
    runs: dict[str, list[dict[str, float]]] = {"echo": [], "kernel": []}
    try:
        with echo_server(folder) as echo, kernel_daemon(folder, [], log_level="WARNING") as kern:
            for _ in range(args.repeat):
                runs["echo"].append(measure_rpc(echo, num_calls, seconds, sdk=False))
                runs["kernel"].append(measure_rpc(kern, num_calls, seconds, sdk=True))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {name: median_figures(found) for name, found in runs.items()}
