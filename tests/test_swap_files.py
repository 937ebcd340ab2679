"""Swap files: locked while in use; the ones a killed kernel left are removed at boot."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmos.drivers.swap_files import open_locked, remove_stale_swap_files, swap_file_path
from llmos.drivers.torch.swap_space import SwapSpace

HOLDER = """
import sys, time
from pathlib import Path
from llmos.drivers.swap_files import open_locked
open_locked(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def hold_in_another_process(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_only_files_no_live_process_holds_are_removed(tmp_path: Path) -> None:
    ours = swap_file_path(tmp_path)
    fd = open_locked(ours)
    left = tmp_path / "swap" / "4242-1.swap"
    left.write_bytes(b"a killed kernel's pages")
    image = tmp_path / "hibernate" / "7.kv"
    image.parent.mkdir()
    image.write_bytes(b"a hibernated process")
    holder = hold_in_another_process(tmp_path / "swap" / "99-1.swap")
    try:
        assert remove_stale_swap_files(tmp_path) == [left]
        assert ours.exists() and (tmp_path / "swap" / "99-1.swap").exists() and image.exists()
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert remove_stale_swap_files(tmp_path) == [tmp_path / "swap" / "99-1.swap"]
        assert ours.exists() and image.exists()
    finally:
        holder.kill()
        holder.wait(30)
        assert holder.stdout is not None
        holder.stdout.close()
        os.close(fd)


def test_a_held_swap_file_cannot_be_taken_twice(tmp_path: Path) -> None:
    path = swap_file_path(tmp_path)
    fd = open_locked(path)
    try:
        with pytest.raises(FileExistsError):
            open_locked(path)
    finally:
        os.close(fd)
    assert remove_stale_swap_files(tmp_path) == [path]


def test_no_swap_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert remove_stale_swap_files(tmp_path) == []


def test_a_dropped_swap_space_deletes_its_file(tmp_path: Path) -> None:
    """An engine used in-process and never closed still leaves no swap file behind."""
    pool = torch.zeros(2, 2, 2, 64, 8)
    space = SwapSpace(pool, 16, 2, 4, tmp_path / "dropped.swap")
    assert (tmp_path / "dropped.swap").exists()
    del space
    gc.collect()
    assert not list(tmp_path.iterdir())
    closed = SwapSpace(pool, 16, 2, 4, tmp_path / "closed.swap")
    closed.close()
    closed.close()  # twice is harmless
    assert not list(tmp_path.iterdir())
