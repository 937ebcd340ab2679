"""Clients, each in its own process: raw-socket and SDK latency, and call rates."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from llmos.syscalls.framing import DEFAULT_MAX_FRAME, frame, recv_frame
from llmos.syscalls.protocol import PROTOCOL_VERSION, decode_reply, encode
from llmos.syscalls.replies import Reply
from llmos.syscalls.requests import Hello, Sysinfo

from syscall_bench.servers import BOOT_TIMEOUT, SPAWN


def connect(path: str) -> socket.socket:
    """A raw blocking connection that has said hello."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    round_trip(sock, frame(encode(Hello(id=1, version=PROTOCOL_VERSION))))
    return sock


def round_trip(sock: socket.socket, request: bytes) -> Reply:
    """Send ``request``; the decoded reply."""
    sock.sendall(request)
    payload = recv_frame(sock, DEFAULT_MAX_FRAME)
    assert payload is not None, "the server hung up"
    return decode_reply(payload)


def latency_summary(samples_ns: list[int], seconds: float) -> dict[str, float]:
    """p50 and p99 in microseconds, and calls per second."""
    cuts = statistics.quantiles(samples_ns, n=100)
    return {
        "p50_us": cuts[49] / 1e3,
        "p99_us": cuts[98] / 1e3,
        "calls_s": len(samples_ns) / seconds,
    }


def timed_calls(call: Callable[[], object], num_calls: int) -> dict[str, float]:
    """Per-call latency of ``num_calls`` calls after a warm-up."""
    for _ in range(min(500, num_calls)):
        call()
    samples = []
    start = time.perf_counter()
    for _ in range(num_calls):
        t = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - t)
    return latency_summary(samples, time.perf_counter() - start)


def raw_latency_worker(path: str, num_calls: int, results: Any) -> None:
    """Raw-socket ``sysinfo`` latency, put in ``results``."""
    sock = connect(path)
    request = frame(encode(Sysinfo(id=2)))
    results.put(timed_calls(lambda: round_trip(sock, request), num_calls))


def sdk_latency_worker(path: str, num_calls: int, results: Any) -> None:
    """``Client.sysinfo()`` latency, put in ``results``."""
    from llmos.syscalls.client import Client

    with Client(path) as client:
        results.put(timed_calls(client.sysinfo, num_calls))


def rate_worker(path: str, seconds: float, barrier: Any, results: Any) -> None:
    """As many ``sysinfo`` round trips as fit in ``seconds`` after the common start."""
    sock = connect(path)
    request = frame(encode(Sysinfo(id=2)))
    barrier.wait()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        round_trip(sock, request)
        count += 1
    results.put(count)


def in_processes(target: Callable[..., None], num: int, *args: Any) -> list[Any]:
    """Run ``target(*args, results)`` in ``num`` processes; what each put in ``results``."""
    results = SPAWN.Queue()
    workers = [SPAWN.Process(target=target, args=(*args, results)) for _ in range(num)]
    for worker in workers:
        worker.start()
    found = [results.get(timeout=BOOT_TIMEOUT) for _ in workers]
    for worker in workers:
        worker.join(30)
    return found
