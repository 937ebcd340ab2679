"""The engine thread: the only thread that runs the core (scheduler, pages, driver).

The event loop hands it commands through an inbox and awaits their futures;
it hands the loop events through ``publish`` (one batch per step, delivered
with ``call_soon_threadsafe``). It never waits on the loop, so a slow or dead
client cannot stall a step.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from llmos.kernel.core import KernelCore

log = logging.getLogger("llmos.kernel")

T = TypeVar("T")
Command = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]
HOUSEKEEPING_INTERVAL = 1.0


class EngineThread:
    """Runs commands and engine steps, in order, on one thread."""

    def __init__(self, core: KernelCore, publish: Callable[[list[Any]], None]) -> None:
        self.core = core
        self._publish = publish
        self._inbox: queue.SimpleQueue[Command | None] = queue.SimpleQueue()
        self._is_running = True
        self._last_housekeeping = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="llmos-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on the engine thread between two steps."""
        future: Future[T] = Future()
        self._inbox.put((future, fn, args))
        return future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` run on the engine thread."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def stop(self, timeout: float) -> bool:
        """Finish the current step, stop; True if the thread ended in time."""
        self._inbox.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while self._is_running:
            self._drain(block=not self.core.has_work)
            if self._is_running and self.core.has_work:
                self.core.step()
                self._flush()
            self._housekeeping()

    def _drain(self, block: bool) -> None:
        """Run every queued command; wait for one first when there is nothing to step."""
        if block:
            try:
                self._execute(self._inbox.get(timeout=HOUSEKEEPING_INTERVAL))
            except queue.Empty:
                return
        while self._is_running:
            try:
                command = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._execute(command)

    def _execute(self, command: Command | None) -> None:
        if command is None:
            self._is_running = False
            return
        future, fn, args = command
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the caller, never raised here
            self._flush()
            future.set_exception(exc)
        else:
            self._flush()  # events first, so a caller that sees the result sees them too
            future.set_result(result)

    def _flush(self) -> None:
        events = self.core.take_events()
        if events:
            self._publish(events)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_housekeeping < HOUSEKEEPING_INTERVAL:
            return
        self._last_housekeeping = now
        try:
            self.core.housekeeping(time.time(), now)
        except Exception:
            log.exception("housekeeping failed")
        self._flush()
