"""Starting and stopping the kernel process: environment, log file, polling.

No kernel logic here: the kernel is ``python -m llmos.kernel`` configured by
``LLMOS_*`` variables; this module only starts it, watches it and waits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from llmos.syscalls.client import Client
from llmos.syscalls.errors import KernelUnavailable, LlmosError
from llmos.syscalls.paths import pidfile_path
from llmos.syscalls.replies import SysinfoReply

KERNEL_COMMAND = (sys.executable, "-m", "llmos.kernel")
POLL_INTERVAL = 0.2
PROBE_TIMEOUT = 5.0
STOP_GRACE = 5.0
# Errors a shutdown call may end with because the kernel closed the connection first.
SHUTDOWN_HANGUPS = frozenset({"ECONNREFUSED", "EPROTO", "EINTR"})
# Kernels this process started, by pid. Keeping them lets a program that drives the
# CLI in-process (a test under CliRunner) reap its kernel once it exits, instead of
# leaving a zombie or a Popen that warns when collected while the kernel still runs.
STARTED: dict[int, subprocess.Popen[bytes]] = {}


def probe(socket_path: Path) -> SysinfoReply | None:
    """The sysinfo of the kernel answering on ``socket_path``; None if none answers."""
    try:
        with Client(socket_path, timeout=PROBE_TIMEOUT, name="llmosctl") as client:
            return client.sysinfo()
    except (KernelUnavailable, OSError):
        return None


def kernel_overrides(
    socket_path: Path, models: Sequence[str], dtype: str | None, data_dir: Path | None
) -> dict[str, object]:
    """KernelSettings arguments for the flags that were given."""
    overrides: dict[str, object] = {"socket": socket_path}
    if models:
        overrides["models"] = list(models)
    if dtype:
        overrides["dtype"] = dtype
    if data_dir:
        overrides["data_dir"] = data_dir
    return overrides


def kernel_env(overrides: dict[str, object], base: dict[str, str]) -> dict[str, str]:
    """``base`` plus ``LLMOS_*`` variables for ``overrides`` (lists as JSON)."""
    env = dict(base)
    for name, value in overrides.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        env[f"LLMOS_{name.upper()}"] = text
    return env


def default_log_file(socket_path: Path) -> Path:
    """The kernel's log when started in the background: ``<socket>.log``."""
    return socket_path.with_name(socket_path.name + ".log")


def start_kernel(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start the kernel in its own session, its output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            KERNEL_COMMAND,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    STARTED[child.pid] = child
    return child


def wait_until_up(
    child: subprocess.Popen[bytes], socket_path: Path, timeout: float
) -> SysinfoReply | None:
    """Poll until the kernel answers; None if ``child`` exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        info = probe(socket_path)
        if info is not None:
            return info
        time.sleep(POLL_INTERVAL)
    return None


def stop_child(child: subprocess.Popen[bytes]) -> None:
    """Terminate a kernel we started (then kill it if it lingers), and reap it."""
    STARTED.pop(child.pid, None)
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def log_size(log_file: Path) -> int:
    """How many bytes ``log_file`` holds (0 if it does not exist)."""
    try:
        return log_file.stat().st_size
    except OSError:
        return 0


def log_tail(log_file: Path, offset: int = 0, num_lines: int = 20) -> str:
    """The last ``num_lines`` lines written to ``log_file`` after ``offset`` ('' if unreadable)."""
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-num_lines:])


def request_shutdown(socket_path: Path, hibernate: bool = False) -> None:
    """Send ``shutdown``; a connection the kernel drops while stopping counts as sent."""
    try:
        with Client(socket_path, timeout=PROBE_TIMEOUT, name="llmosctl") as client:
            client.shutdown(hibernate=hibernate)
    except LlmosError as error:
        if error.code not in SHUTDOWN_HANGUPS:
            raise


def is_running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie is not; one this process started is reaped)."""
    child = STARTED.get(pid)
    if child is not None and child.poll() is not None:
        del STARTED[pid]
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def is_down(socket_path: Path, pid: int | None) -> bool:
    """Whether the kernel has gone: its pid exited, or its socket and pidfile are removed.

    The kernel removes the socket before it releases the pidfile, so the
    socket alone is not enough: a new kernel could still find the pidfile held.
    A kernel this process started is waited for until it exits, and reaped.
    """
    if pid is not None and not is_running(pid):
        return True
    is_files_gone = not socket_path.exists() and not pidfile_path(socket_path).exists()
    return is_files_gone and pid not in STARTED


def wait_until_down(socket_path: Path, pid: int | None, timeout: float) -> bool:
    """Wait until the kernel on ``socket_path`` is gone; whether it went in time."""
    deadline = time.monotonic() + timeout
    while not is_down(socket_path, pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True
