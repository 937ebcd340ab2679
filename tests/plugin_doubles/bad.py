"""Test double: a plugin whose syscalls misbehave on purpose.

Each syscall breaks the plugin contract in one way: ``bad_raise`` raises,
``bad_hang`` blocks its thread in ``time.sleep`` past its 1 s timeout,
``bad_wrong_type`` returns a dict instead of its result Struct, and
``bad_spawn_then_raise`` starts two processes, waits until both hold KV
pages, then raises. Its ``llmos_process_exit`` and ``llmos_cli`` raise too.
The kernel must answer each with an error reply, keep serving other
clients, and kill and reap the processes the handler left behind.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl

__version__ = "0.0.1"
HANG_TIMEOUT = 1.0
CHAT = [{"role": "user", "content": "Hello there, how are you today?"}]


class RaiseParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the exception says."""

    message: str = "the bad plugin failed on purpose"


class HangParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long the handler blocks its thread."""

    seconds: float = 4.0


class Empty(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """No arguments."""


class Said(msgspec.Struct, kw_only=True):
    """What a well-behaved handler would have returned."""

    text: str


async def bad_raise(kernel: KernelHandle, params: RaiseParams) -> Said:
    """Raise RuntimeError with ``message``."""
    raise RuntimeError(params.message)


async def bad_hang(kernel: KernelHandle, params: HangParams) -> Said:
    """Block the handler's thread (not await) for ``seconds``, past the 1 s timeout."""
    time.sleep(params.seconds)
    return Said(text=f"slept {params.seconds} s")


async def bad_wrong_type(kernel: KernelHandle, params: Empty) -> Said:
    """Return a dict where a ``Said`` is declared."""
    wrong: Any = {"text": "a dict, not a Said"}
    return wrong  # type: ignore[no-any-return]


async def bad_spawn_then_raise(kernel: KernelHandle, params: Empty) -> Said:
    """Start two chat processes, read each until it waits (pages held), then raise.

    The error names the pids, so a test can check what became of them.
    """
    pids = [await kernel.spawn(messages=CHAT, chat=True, max_tokens=8) for _ in range(2)]
    for pid in pids:
        async for _ in kernel.stream(pid):
            pass
    raise RuntimeError(f"spawned pids {pids} then failed on purpose")


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("bad_raise", bad_raise, RaiseParams, Said)
    register("bad_hang", bad_hang, HangParams, Said, timeout=HANG_TIMEOUT)
    register("bad_wrong_type", bad_wrong_type, Empty, Said)
    register("bad_spawn_then_raise", bad_spawn_then_raise, Empty, Said)


@hookimpl
def llmos_process_exit(pid: int, uid: int, model: str, status: str) -> None:
    raise RuntimeError(f"the bad plugin's exit hook failed on purpose (pid {pid})")


@hookimpl
def llmos_cli(cli: Any) -> None:
    raise RuntimeError("the bad plugin's commands fail on purpose")
