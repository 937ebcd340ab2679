"""What a plugin's syscall handler receives: the kernel, seen through one handle.

A handler never reaches into the kernel: it asks this handle, which acts
under the calling user's uid and nice. Every process a handler starts is
its child; when the handler returns, fails or times out, the kernel kills
and reaps whatever of them is left, so a plugin cannot leak a process or a page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar

from llmos.syscalls.replies import Waited

T = TypeVar("T")


class KernelHandle(Protocol):
    """The kernel as a plugin handler sees it."""

    uid: int
    nice: int

    async def generate(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[dict[str, str]] | None = None,
        model: str = "default",
        **sampling: Any,
    ) -> str:
        """Run a process to its end and return its text (a chat completion with ``messages``)."""
        ...

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
        ...

    async def wait(self, pid: int) -> Waited:
        """Wait for a process to exit and reap it."""
        ...

    async def fork(self, pid: int, n: int = 1, seeds: list[int] | None = None) -> list[int]:
        """Children of ``pid`` sharing its pages."""
        ...

    async def write(self, pid: int, content: str) -> None:
        """Next user turn of a waiting chat process."""
        ...

    def stream(self, pid: int) -> AsyncIterator[str]:
        """The text of ``pid`` as it is generated."""
        ...

    async def kill(self, pid: int) -> None:
        """End a process."""
        ...

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU- or IO-bound work on a thread of its own (ending with the call), off the
        event loop."""
        ...
