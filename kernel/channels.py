"""Channels: each process's event log and its subscribers, on the event loop.

The engine thread publishes batches of events; a channel keeps a process's
events (so a stream can start from the first token) and fans each one out
to its subscribers' bounded queues. A subscriber that falls too far behind
is dropped (it gets :data:`LAGGED`), never waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from llmos.kernel.notices import ModelsChanged, Reaped, ServiceChanged
from llmos.syscalls.events import Event, ExitEvent, is_terminal

LAGGED = object()  # in a dropped subscriber's queue, in place of what it missed


class Subscriber:
    """One stream's view of a channel: a bounded queue of events."""

    def __init__(self, backlog: list[Event], max_lag: int) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(len(backlog) + max_lag)
        for event in backlog:
            self.queue.put_nowait(event)

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False (and the subscriber is dropped) when it is full."""
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(LAGGED)
            return False

    async def get(self) -> Any:
        return await self.queue.get()


class Channel:
    """A process's events so far, and who listens."""

    def __init__(self) -> None:
        self.log: list[Event] = []
        self.subscribers: list[Subscriber] = []
        self.exited = asyncio.Event()

    def publish(self, event: Event) -> None:
        self.log.append(event)
        self.subscribers = [s for s in self.subscribers if s.offer(event)]
        if isinstance(event, ExitEvent):
            self.exited.set()

    def subscribe(self, from_start: bool, max_lag: int) -> Subscriber:
        """A new subscriber; it first gets the log (all of it, or only a final event)."""
        if from_start:
            backlog = list(self.log)
        else:
            backlog = self.log[-1:] if self.log and isinstance(self.log[-1], ExitEvent) else []
        subscriber = Subscriber(backlog, max_lag)
        if not (backlog and is_terminal(backlog[-1])):
            self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)


class ChannelTable:
    """Channels by pid, created on first use; the loop-side view of resident models."""

    def __init__(self, max_lag: int) -> None:
        self.max_lag = max_lag
        self.channels: dict[int, Channel] = {}
        self.model_names: tuple[str, ...] = ()
        self.on_exit: Callable[[int, int, str, str], None] | None = None
        self.service: tuple[Any, ...] = ()

    def channel(self, pid: int) -> Channel:
        if pid not in self.channels:
            self.channels[pid] = Channel()
        return self.channels[pid]

    def subscribe(self, pid: int, from_start: bool) -> Subscriber:
        return self.channel(pid).subscribe(from_start, self.max_lag)

    def unsubscribe(self, pid: int, subscriber: Subscriber) -> None:
        channel = self.channels.get(pid)
        if channel is not None:
            channel.unsubscribe(subscriber)
            if not channel.log and not channel.subscribers:
                del self.channels[pid]

    def publish(self, batch: list[Any]) -> None:
        """Deliver one batch from the engine thread, in order."""
        for item in batch:
            if isinstance(item, Reaped):
                self.channels.pop(item.pid, None)
            elif isinstance(item, ModelsChanged):
                self.model_names = item.names
            elif isinstance(item, ServiceChanged):
                self.service = item.rows
            else:
                self.channel(item.pid).publish(item)
                if isinstance(item, ExitEvent) and self.on_exit is not None:
                    self.on_exit(item.pid, item.uid, item.model, item.status)

    def discard(self, pid: int) -> None:
        """Forget a pid that never became a process."""
        self.channels.pop(pid, None)
