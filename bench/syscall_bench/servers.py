"""Servers, each a separate process on a short socket path: the echo floor and a kernel."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from llmos.syscalls.framing import DEFAULT_MAX_FRAME, frame, recv_frame
from llmos.syscalls.protocol import PROTOCOL_VERSION, encode
from llmos.syscalls.requests import Hello

from syscall_bench.echo import run_echo

BOOT_TIMEOUT = 900.0  # a first boot converts the default model's GGUF
SPAWN = multiprocessing.get_context("spawn")  # clients start clean: no torch, no threads


def answers_hello(path: Path) -> bool:
    """Whether a server on ``path`` answers ``hello``."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(frame(encode(Hello(id=1, version=PROTOCOL_VERSION))))
        return recv_frame(sock, DEFAULT_MAX_FRAME) is not None
    return False


def wait_until_serving(path: Path, is_alive: Callable[[], bool], what: str) -> None:
    """Wait for ``path`` to answer, failing if the server dies or takes too long."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not answers_hello(path):
        if not is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up on {path}")
        time.sleep(0.05)


@contextlib.contextmanager
def echo_server(folder: Path) -> Iterator[Path]:
    """The echo floor on ``folder/echo.sock``, in a spawned process."""
    path = folder / "echo.sock"
    process = SPAWN.Process(target=run_echo, args=(str(path),), daemon=True)
    process.start()
    try:
        wait_until_serving(path, process.is_alive, "the echo server")
        yield path
    finally:
        process.terminate()
        process.join(10)


@contextlib.contextmanager
def kernel_daemon(folder: Path, models: list[str], **settings: object) -> Iterator[Path]:
    """A ``python -m llmos.kernel`` on ``folder/k.sock``, configured by ``LLMOS_*``."""
    path, log = folder / "k.sock", folder / "kernel.log"
    env = dict(os.environ, LLMOS_SOCKET=str(path), LLMOS_MODELS=json.dumps(models))
    env.update({f"LLMOS_{k.upper()}": str(v) for k, v in settings.items()})
    with log.open("ab") as sink:
        cmd = [sys.executable, "-m", "llmos.kernel"]
        process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        wait_until_serving(path, lambda: process.poll() is None, "the kernel")
        yield path
    except BaseException:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
