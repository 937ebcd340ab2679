"""The handle a plugin syscall receives: the kernel, acting for the caller.

Everything goes through the syscall table under the caller's uid (and the
nice it called with), exactly as the caller's own syscalls would. The
handle remembers every process it started; :meth:`PluginHandle.close` kills
and reaps whatever is left, so a plugin that fails or hangs leaks nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from llmos.kernel.channels import LAGGED
from llmos.kernel.own_thread import in_own_thread
from llmos.syscalls.errors import InvalidArgument, LlmosError
from llmos.syscalls.events import ExitEvent, TokenEvent, is_terminal
from llmos.syscalls.replies import Forked, Waited
from llmos.syscalls.requests import Fork, Message, Spawn
from llmos.syscalls.sampling import SamplingParams

if TYPE_CHECKING:
    from llmos.kernel.syscall_table import SyscallTable

T = TypeVar("T")


class PluginHandle:
    """Spawn, fork, stream, wait and kill under one caller's uid and nice."""

    def __init__(self, syscalls: SyscallTable, uid: int, nice: int = 0) -> None:
        self.syscalls = syscalls
        self.uid = uid
        self.nice = nice
        self.pids: set[int] = set()

    async def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[dict[str, str]] | None = None,
        model: str = "default",
        **sampling: Any,
    ) -> str:
        """Run a process to its end and return its text."""
        pid = await self.spawn(prompt, messages=messages, model=model, **sampling)
        waited = await self.wait(pid)
        if waited.proc.exit_status == "error":
            raise LlmosError(f"process {pid} failed: {waited.proc.error}")
        return waited.text

    async def spawn(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[dict[str, str]] | None = None,
        model: str = "default",
        chat: bool = False,
        **sampling: Any,
    ) -> int:
        """Start a process; return its pid."""
        request = Spawn(
            model=model,
            prompt=prompt,
            messages=None if messages is None else [Message(**m) for m in messages],
            params=sampling_params(sampling),
            nice=self.nice,
            chat=chat,
        )
        reply = await self.syscalls.spawn(self.uid, request)
        pid: int = reply.pid  # type: ignore[union-attr]
        self.pids.add(pid)
        return pid

    async def wait(self, pid: int) -> Waited:
        """Wait for a process to exit and reap it."""
        waited = await self.syscalls.wait(self.uid, pid, None)
        self.pids.discard(pid)
        return waited

    async def fork(self, pid: int, n: int = 1, seeds: list[int] | None = None) -> list[int]:
        """Children of ``pid`` sharing its pages."""
        reply = await self.syscalls.dispatch(self.uid, Fork(pid=pid, n=n, seeds=seeds))
        assert isinstance(reply, Forked)
        self.pids.update(reply.pids)
        return reply.pids

    async def write(self, pid: int, content: str) -> None:
        """Next user turn of a waiting chat process."""
        await self.syscalls.engine.call(self.syscalls.core.write, self.uid, pid, content)

    async def stream(self, pid: int) -> AsyncGenerator[str, None]:
        """The text of ``pid`` from its first token until it waits or exits."""
        await self.syscalls.engine.call(self.syscalls.core.check_access, self.uid, pid)
        subscriber = self.syscalls.channels.subscribe(pid, True)
        try:
            while True:
                event = await subscriber.get()
                if event is LAGGED:
                    raise LlmosError(f"the stream of process {pid} fell behind")
                if isinstance(event, TokenEvent):
                    yield event.text
                if is_terminal(event):
                    if isinstance(event, ExitEvent) and event.status == "error":
                        raise LlmosError(f"process {pid} failed: {event.error}")
                    return
        finally:
            self.syscalls.channels.unsubscribe(pid, subscriber)

    async def kill(self, pid: int) -> None:
        """End a process."""
        await self.syscalls.engine.call(self.syscalls.core.kill, self.uid, pid, "TERM")

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a thread of its own, off the event loop (a thread that ends
        with the call, so tensor code run there leaves no OpenMP pool behind)."""
        return await in_own_thread(fn, *args, name="llmos-plugin")

    async def close(self) -> None:
        """Kill and reap every process this handle started that is still around."""
        for pid in list(self.pids):
            with contextlib.suppress(LlmosError):
                await self.kill(pid)
            with contextlib.suppress(LlmosError):
                await self.wait(pid)
        self.pids.clear()


def sampling_params(fields: dict[str, Any]) -> SamplingParams:
    """SamplingParams from keyword fields; InvalidArgument for an unknown one."""
    try:
        return SamplingParams(**fields).validate()
    except TypeError as exc:
        raise InvalidArgument(f"bad sampling parameters: {exc}") from None
