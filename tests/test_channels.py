"""Channels: event logs, replay from the start, and dropping subscribers that lag."""

from __future__ import annotations

import asyncio

from llmos.kernel.channels import LAGGED, ChannelTable
from llmos.kernel.notices import ModelsChanged, Reaped
from llmos.syscalls.events import ExitEvent, TokenEvent, WaitingEvent


def token(pid: int, text: str) -> TokenEvent:
    return TokenEvent(pid=pid, text=text, token_ids=[1])


def drain(queue: asyncio.Queue[object]) -> list[object]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def test_replay_from_the_start_then_live_events() -> None:
    async def scenario() -> None:
        table = ChannelTable(max_lag=8)
        table.publish([token(1, "a"), token(1, "b")])
        early = table.subscribe(1, from_start=True)
        late = table.subscribe(1, from_start=False)
        table.publish([token(1, "c"), ExitEvent(pid=1, status="stop")])
        assert [getattr(e, "text", "exit") for e in drain(early.queue)] == ["a", "b", "c", "exit"]
        assert [getattr(e, "text", "exit") for e in drain(late.queue)] == ["c", "exit"]
        assert table.channel(1).exited.is_set()
        after = table.subscribe(1, from_start=False)  # already exited: just the exit
        assert [type(e) for e in drain(after.queue)] == [ExitEvent]

    asyncio.run(scenario())


def test_a_subscriber_that_lags_is_dropped_not_waited_for() -> None:
    async def scenario() -> None:
        table = ChannelTable(max_lag=4)
        slow = table.subscribe(7, from_start=True)
        fast = table.subscribe(7, from_start=True)
        for index in range(4):
            table.publish([token(7, str(index))])
            drain(fast.queue)
        table.publish([token(7, "overflow")])
        assert drain(slow.queue) == [LAGGED]
        assert table.channel(7).subscribers == [fast]
        table.publish([token(7, "more")])
        assert [e.text for e in drain(fast.queue)] == ["overflow", "more"]  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_waiting_chat_process_ends_a_replay_and_reaping_forgets_it() -> None:
    async def scenario() -> None:
        table = ChannelTable(max_lag=8)
        table.publish([token(3, "hi"), WaitingEvent(pid=3, finish="stop")])
        replay = table.subscribe(3, from_start=True)
        assert [type(e) for e in drain(replay.queue)] == [TokenEvent, WaitingEvent]
        assert replay not in table.channel(3).subscribers  # the replay ended the stream
        table.publish([Reaped(3), ModelsChanged(("m",))])
        assert 3 not in table.channels and table.model_names == ("m",)

    asyncio.run(scenario())
