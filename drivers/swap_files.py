"""Swap files: one per driver under ``<data dir>/swap/``, locked while in use.

Each file is held with an exclusive ``flock`` from the moment it is created
until its driver closes it. A kernel killed with SIGKILL cannot delete its
files, but its locks die with it, so the next kernel removes, at boot,
every swap file it can lock: exactly those no live kernel owns.
Hibernation images live in another folder and are never touched here.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
from pathlib import Path

log = logging.getLogger("llmos.kernel")
SUFFIX = ".swap"
_NUMBERS = itertools.count(1)


def swap_dir(data_dir: Path) -> Path:
    """The folder of every kernel's swap files under ``data_dir``."""
    return data_dir / "swap"


def swap_file_path(data_dir: Path) -> Path:
    """A swap file of its own for one driver of this kernel, under the data dir."""
    return swap_dir(data_dir) / f"{os.getpid()}-{next(_NUMBERS)}{SUFFIX}"


def open_locked(path: Path) -> int:
    """Create (or reuse) the swap file at ``path``, locked; the lock lasts while the fd is open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileExistsError(f"swap file {path} is in use by another driver") from None
    return fd


def remove_stale_swap_files(data_dir: Path) -> list[Path]:
    """Delete the swap files under ``data_dir`` that no live driver holds; return them."""
    folder = swap_dir(data_dir)
    if not folder.is_dir():
        return []
    removed = [path for path in sorted(folder.glob(f"*{SUFFIX}")) if _remove_if_unlocked(path)]
    if removed:
        log.warning("removed %d stale swap files left by a crashed kernel", len(removed))
    return removed


def _remove_if_unlocked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False  # a live driver holds it
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # still holding the lock, so no driver can have taken it over
    os.close(fd)
    return True
