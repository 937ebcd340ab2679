"""Test double: a plugin with a misspelt hook name (``llmos_register_sycalls``).

``check_pending`` finds a hook no spec knows, so the whole plugin is left
out, its correctly spelt ``llmos_register_models`` included; the other
plugins load.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmos.plugins.hookspecs import hookimpl


class Nothing(msgspec.Struct):
    """No arguments, no result."""


async def never(kernel: Any, params: Nothing) -> Nothing:
    """Never registered: the hook that would register it is misspelt."""
    return Nothing()


@hookimpl
def llmos_register_sycalls(register: Any) -> None:
    register("misspelt", never, Nothing, Nothing)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register("misspelt_preset", "default", "misspelt")
