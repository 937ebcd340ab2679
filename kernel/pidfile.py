"""The pidfile and the socket file: one kernel per socket, stale files cleaned up.

The pidfile is locked (``flock``) for the kernel's lifetime, so a second
kernel on the same socket fails to take it and refuses to start, while the
files a crashed kernel left behind (whose lock died with it) are taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from pathlib import Path

from llmos.syscalls.errors import Busy

log = logging.getLogger("llmos.kernel")


class PidFile:
    """An flock-held pidfile next to the kernel's socket."""

    def __init__(self, path: Path, socket_path: Path) -> None:
        self.path = path
        self.socket_path = socket_path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the pidfile or raise Busy naming the running kernel; clear a stale socket."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise Busy(self._running_message(pid)) from None
        self._fd = fd
        if socket_is_live(self.socket_path):
            self.release()
            raise Busy(self._running_message("unknown"))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        if self.socket_path.exists() or self.socket_path.is_symlink():
            log.warning("removing stale socket %s (a kernel did not shut down)", self.socket_path)
            self.socket_path.unlink()

    def _running_message(self, pid: str) -> str:
        return (
            f"a kernel (pid {pid}) is already running on {self.socket_path}; "
            "stop it with `llmosctl down` or choose another socket with LLMOS_SOCKET"
        )

    def release(self) -> None:
        """Remove the pidfile and drop the lock."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def socket_is_live(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket at ``path``."""
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()
