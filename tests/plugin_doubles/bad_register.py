"""Test double: a plugin that breaks the registration contract.

It registers a plain (not ``async``) function as a syscall handler, which
the registry refuses with EINVAL. The kernel should leave this plugin out
and boot with the others, as it does for one that fails to import.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmos.plugins.hookspecs import hookimpl


class Nothing(msgspec.Struct):
    """No arguments, no result."""


def not_async(kernel: Any, params: Nothing) -> Nothing:
    """A handler that is not a coroutine function."""
    return Nothing()


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("not_async", not_async, Nothing, Nothing)
