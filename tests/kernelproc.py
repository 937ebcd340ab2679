"""A real kernel daemon for end-to-end tests: a subprocess on a short temporary socket.

``running_kernel(...)`` starts ``python -m llmos.kernel`` configured through
``LLMOS_*`` variables, with its socket in a fresh ``/tmp`` folder (Unix socket
paths must stay under ~100 bytes) and the suite's private data directory, waits
until it answers ``hello``, and on exit stops it with SIGTERM and checks that
it exited 0 and left no socket or pidfile behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmos.syscalls.framing import frame, recv_frame
from llmos.syscalls.paths import pidfile_path
from llmos.syscalls.protocol import PROTOCOL_VERSION, decode_reply, encode
from llmos.syscalls.replies import HelloReply
from llmos.syscalls.requests import Hello

BOOT_TIMEOUT = 180.0


@dataclass
class KernelProcess:
    """A kernel subprocess and where it listens."""

    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    @property
    def pidfile(self) -> Path:
        return pidfile_path(self.socket)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL and fail if it overstays)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            log = self.log_text()
            raise AssertionError(f"kernel ignored SIGTERM for {timeout} s:\n{log}") from None


def short_socket_dir() -> Path:
    """A fresh folder under /tmp, short enough for AF_UNIX paths."""
    return Path(tempfile.mkdtemp(prefix="llmos-", dir="/tmp"))


def kernel_env(socket_path: Path, models: list[str], **settings: object) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        LLMOS_SOCKET=str(socket_path),
        LLMOS_MODELS=json.dumps(models),
        LLMOS_DTYPE="float32",
        LLMOS_KV_BUDGET=str(64 * 1024**2),
        LLMOS_LOG_LEVEL="DEBUG",
    )
    env.update({f"LLMOS_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def start_kernel(socket_path: Path, models: list[str], **settings: object) -> KernelProcess:
    """Start a kernel and wait until it answers; raise with its log if it dies first."""
    log = socket_path.with_suffix(".log")
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmos.kernel"],
            env=kernel_env(socket_path, models, **settings),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    kernel = KernelProcess(process, socket_path, log)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not answers_hello(socket_path):
        if process.poll() is not None:
            raise AssertionError(f"kernel exited {process.returncode}:\n{kernel.log_text()}")
        if time.monotonic() > deadline:
            kernel.stop()
            raise AssertionError(f"kernel did not come up:\n{kernel.log_text()}")
        time.sleep(0.05)
    return kernel


def answers_hello(socket_path: Path) -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        sock.sendall(frame(encode(Hello(id=1, version=PROTOCOL_VERSION))))
        payload = recv_frame(sock, 1 << 20)
        return payload is not None and isinstance(decode_reply(payload), HelloReply)
    return False


@contextlib.contextmanager
def running_kernel(models: list[str], **settings: object) -> Iterator[KernelProcess]:
    """A kernel for the duration of a ``with`` block; checks its clean exit after."""
    folder = short_socket_dir()
    kernel = start_kernel(folder / "k.sock", models, **settings)
    try:
        yield kernel
    finally:
        code = kernel.stop()
        leftovers = [p for p in (kernel.socket, kernel.pidfile) if p.exists()]
        log = kernel.log_text()
        shutil.rmtree(folder, ignore_errors=True)
        assert code == 0, f"kernel exited {code}:\n{log}"
        assert not leftovers, f"kernel left {leftovers} behind"
