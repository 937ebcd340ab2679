"""Plugin handlers run on their own thread and event loop, never on the kernel's.

A handler that blocks (a slow library call, a ``time.sleep``) stalls only its
own thread; the kernel's loop goes on serving everyone else, and answers the
caller ETIMEDOUT when the handler's time is up. The handler talks to the
kernel through :class:`ThreadedHandle`, which hands each call over to the
kernel's loop and waits for the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from llmos.kernel.own_thread import in_own_thread
from llmos.kernel.plugin_handle import PluginHandle
from llmos.syscalls.errors import Interrupted

T = TypeVar("T")
MAX_PLUGIN_THREADS = 16


class ThreadedHandle:
    """A :class:`PluginHandle` usable from another thread's event loop."""

    def __init__(self, handle: PluginHandle, kernel_loop: asyncio.AbstractEventLoop) -> None:
        self._handle = handle
        self._loop = kernel_loop
        self.uid = handle.uid
        self.nice = handle.nice
        self.is_closed = False

    async def _on_kernel(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.is_closed:
            coroutine.close()
            raise Interrupted("this plugin call has ended (timed out or failed)")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return await asyncio.wrap_future(future)

    async def generate(self, *args: Any, **kwargs: Any) -> str:
        return await self._on_kernel(self._handle.generate(*args, **kwargs))

    async def spawn(self, *args: Any, **kwargs: Any) -> int:
        return await self._on_kernel(self._handle.spawn(*args, **kwargs))

    async def wait(self, pid: int) -> Any:
        return await self._on_kernel(self._handle.wait(pid))

    async def fork(self, pid: int, n: int = 1, seeds: list[int] | None = None) -> list[int]:
        return await self._on_kernel(self._handle.fork(pid, n, seeds))

    async def write(self, pid: int, content: str) -> None:
        await self._on_kernel(self._handle.write(pid, content))

    async def kill(self, pid: int) -> None:
        await self._on_kernel(self._handle.kill(pid))

    async def stream(self, pid: int) -> AsyncIterator[str]:
        chunks = self._handle.stream(pid)  # iterated on the kernel's loop only
        try:
            while True:
                try:
                    yield await self._on_kernel(anext_or_none(chunks))
                except StopAsyncIteration:
                    return
        finally:
            await self._on_kernel(chunks.aclose())

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_own_thread(fn, *args, name="llmos-plugin")


def settle(resolve: Callable[[Any], None], outcome: Any) -> None:
    """Resolve a future unless the kernel stopped waiting (it timed out and cancelled it)."""
    with contextlib.suppress(InvalidStateError):
        resolve(outcome)


async def anext_or_none(chunks: AsyncIterator[str]) -> str:
    return await chunks.__anext__()


class PluginThreads:
    """Runs handlers, each on a fresh event loop in its own daemon thread.

    Daemon threads, so a handler that never returns cannot keep the kernel's
    process alive after shutdown; a semaphore bounds how many run at once.
    """

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(MAX_PLUGIN_THREADS)

    async def run(
        self,
        handler: Callable[[Any, Any], Awaitable[T]],
        handle: PluginHandle,
        params: Any,
        timeout: float,
    ) -> T:
        """``await handler(handle, params)`` on a worker thread, within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        threaded = ThreadedHandle(handle, loop)
        result: Future[T] = Future()

        def run_on_thread() -> None:
            async def main() -> T:
                return await handler(threaded, params)

            try:
                value = asyncio.run(main())
            except BaseException as exc:  # handed to the kernel's loop, never raised here
                settle(result.set_exception, exc)
            else:
                settle(result.set_result, value)

        async with self.slots:
            threading.Thread(target=run_on_thread, name="llmos-plugin", daemon=True).start()
            try:
                return await asyncio.wait_for(asyncio.wrap_future(result), timeout)
            finally:
                threaded.is_closed = True

    def shutdown(self) -> None:
        """Nothing to join: a handler still running dies with the process."""
