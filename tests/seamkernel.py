"""An in-process kernel whose callers' uids the test chooses.

The kernel learns a caller's uid in one place, the ``credentials`` function
given to :class:`KernelServer` (normally ``SO_PEERCRED``). This test double of
that function lets a test be two users on a machine where it cannot be.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kernelproc import answers_hello, short_socket_dir

from llmos.kernel.server import KernelServer
from llmos.kernel.settings import KernelSettings


@contextlib.contextmanager
def kernel_with_uids(models: list[str]) -> Iterator[tuple[Path, Callable[[int], None]]]:
    """(socket path, set_uid): connections made after ``set_uid(u)`` are uid ``u``."""
    folder = short_socket_dir()
    uid = [0]
    settings = KernelSettings(
        socket=folder / "k.sock", models=models, dtype="float32", kv_budget=32 * 1024**2
    )
    server = KernelServer(settings, credentials=lambda _sock: uid[0])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not answers_hello(settings.socket):
            assert thread.is_alive() and time.monotonic() < deadline, "kernel did not come up"
            time.sleep(0.05)
        yield settings.socket, lambda new: uid.__setitem__(0, new)
    finally:
        loop.call_soon_threadsafe(server.request_shutdown)
        thread.join(30)
        loop.close()
        shutil.rmtree(folder, ignore_errors=True)
