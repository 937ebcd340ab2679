"""in_own_thread: blocking work on a thread that ends with it (so its OpenMP pool ends too)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llmos.kernel.own_thread import in_own_thread


def test_returns_the_result_from_a_thread_that_then_ends() -> None:
    seen: list[threading.Thread] = []

    def work(a: int, b: int) -> int:
        seen.append(threading.current_thread())
        return a + b

    assert asyncio.run(in_own_thread(work, 2, 3, name="llmos-test")) == 5
    (thread,) = seen
    assert thread is not threading.main_thread() and thread.name == "llmos-test"
    thread.join(5)
    assert not thread.is_alive()


def test_an_exception_reaches_the_awaiting_task() -> None:
    def fail() -> None:
        raise ValueError("bad model file")

    with pytest.raises(ValueError, match="bad model file"):
        asyncio.run(in_own_thread(fail))


def test_a_cancelled_waiter_drops_the_outcome_quietly() -> None:
    release = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(in_own_thread(release.wait, 5))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()  # the thread finishes after its waiter is gone
        await asyncio.sleep(0.05)  # its result arrives and is dropped, no error

    asyncio.run(main())
