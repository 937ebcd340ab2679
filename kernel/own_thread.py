"""Blocking work on a thread of its own that ends with it.

OpenMP (which torch and the native kernels use) keeps a pool of worker
threads for every thread that ever ran a parallel region, for as long as that
thread lives, and libgomp counts all of them: once they outnumber the cores,
every pool stops spinning between regions and each region pays a futex wake
(≈ 40 µs here, against ≈ 10 µs). Model loading runs hundreds of regions; on a
long-lived executor thread its pool would stay behind and slow every engine
step. On a thread that ends, the pool goes with it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_own_thread(fn: Callable[..., T], *args: object, name: str = "llmos-work") -> T:
    """Await ``fn(*args)`` run on a new thread that exits when it returns."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.cancelled():  # the awaiting task went away; the work's outcome is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
