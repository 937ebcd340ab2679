"""Stream events: what a subscribed caller receives while a process runs."""

from __future__ import annotations

import msgspec

from llmos.syscalls.replies import Reply


class TokenEvent(Reply, tag="token"):
    """New text of a process (it may be empty while a stop string is held back)."""

    pid: int
    text: str
    token_ids: list[int]


class WaitingEvent(Reply, tag="waiting"):
    """A chat process finished its turn and waits for ``write``; ends a stream."""

    pid: int
    finish: str


class ExitEvent(Reply, tag="exit"):
    """A process exited; ends a stream."""

    pid: int
    status: str
    error: str | None = None
    uid: int = 0
    model: str = ""


Event = TokenEvent | WaitingEvent | ExitEvent


def is_terminal(event: msgspec.Struct) -> bool:
    """Whether ``event`` ends a stream."""
    return isinstance(event, WaitingEvent | ExitEvent)
