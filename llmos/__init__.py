"""llmos: an operating system for language models.

The client names below load on first use, so ``import llmos`` stays cheap
(the CLI imports it on every command).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "llmos.syscalls.client",
    "AsyncClient": "llmos.syscalls.aclient",
    "load_model": "llmos.sdk",
    "Model": "llmos.sdk",
    "SamplingParams": "llmos.syscalls.sampling",
    "LlmosError": "llmos.syscalls.errors",
}

__all__ = [
    "AsyncClient",
    "Client",
    "LlmosError",
    "Model",
    "SamplingParams",
    "__version__",
    "load_model",
]

if TYPE_CHECKING:
    from llmos.sdk import Model, load_model
    from llmos.syscalls.aclient import AsyncClient
    from llmos.syscalls.client import Client
    from llmos.syscalls.errors import LlmosError
    from llmos.syscalls.sampling import SamplingParams


def __getattr__(name: str) -> Any:
    """Import an exported name from its module the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmos' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted(__all__)
