"""Process streams: a process's events as they arrive, for the blocking and the asyncio client.

Both kinds end after the terminal event (:class:`WaitingEvent` or
:class:`ExitEvent`) and raise an error the kernel sends in between. Closing a
stream early only stops listening; the process itself runs on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from llmos.syscalls.calls import raise_if_error
from llmos.syscalls.errors import ProtocolError
from llmos.syscalls.events import Event, ExitEvent, TokenEvent, WaitingEvent
from llmos.syscalls.replies import Reply


class StreamBase:
    """A process's events as they arrive, and what they add up to.

    ``text`` and ``token_ids`` grow with each :class:`TokenEvent`; ``final``
    is the terminal event (:class:`WaitingEvent` or :class:`ExitEvent`) once
    it came. An error from the kernel ends the stream and is raised.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.token_ids: list[int] = []
        self.final: WaitingEvent | ExitEvent | None = None
        self.is_done = False
        self._chunks: list[str] = []

    @property
    def text(self) -> str:
        """The text so far: every token event's text, joined."""
        return "".join(self._chunks)

    @property
    def exit_status(self) -> str | None:
        """The :class:`ExitEvent`'s status once the process exited; None before, or if it waits."""
        return self.final.status if isinstance(self.final, ExitEvent) else None

    def _accept(self, message: Reply) -> Event:
        """Record one message of the stream and return it; raise it if it is an error."""
        if isinstance(message, TokenEvent):
            self._chunks.append(message.text)
            self.token_ids.extend(message.token_ids)
            return message
        self.is_done = True
        raise_if_error(message)
        if isinstance(message, WaitingEvent | ExitEvent):
            self.final = message
            return message
        raise ProtocolError(f"unexpected {type(message).__name__} in the stream of {self.pid}")


class ProcessStream(StreamBase):
    """The events of one process, read as an iterator; ends after the terminal event.

    Closing it early (or leaving its ``with`` block) stops listening; the
    process itself runs on.
    """

    def __init__(self, pid: int, receive: Callable[[], Reply], release: Callable[[], None]) -> None:
        super().__init__(pid)
        self._receive = receive
        self._release = release

    def __iter__(self) -> ProcessStream:
        return self

    def __next__(self) -> Event:
        if self.is_done:
            raise StopIteration
        try:
            event = self._accept(self._receive())
        except BaseException:
            self.close()
            raise
        if self.is_done:
            self.close()
        return event

    def text_chunks(self) -> Iterator[str]:
        """The text of each token event as it arrives (empty ones skipped)."""
        for event in self:
            if isinstance(event, TokenEvent) and event.text:
                yield event.text

    def close(self) -> None:
        """Stop listening to the process; idempotent."""
        self.is_done = True
        self._release()

    def __enter__(self) -> ProcessStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncProcessStream(StreamBase):
    """The events of one process, read with ``async for``; ends after the terminal event."""

    def __init__(
        self, pid: int, receive: Callable[[], Awaitable[Reply]], release: Callable[[], None]
    ) -> None:
        super().__init__(pid)
        self._receive = receive
        self._release = release

    def __aiter__(self) -> AsyncProcessStream:
        return self

    async def __anext__(self) -> Event:
        if self.is_done:
            raise StopAsyncIteration
        try:
            event = self._accept(await self._receive())
        except BaseException:
            self.close()
            raise
        if self.is_done:
            self.close()
        return event

    async def text_chunks(self) -> AsyncIterator[str]:
        """The text of each token event as it arrives (empty ones skipped)."""
        async for event in self:
            if isinstance(event, TokenEvent) and event.text:
                yield event.text

    def close(self) -> None:
        """Stop listening to the process; idempotent (nothing to await)."""
        self.is_done = True
        self._release()

    async def __aenter__(self) -> AsyncProcessStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
