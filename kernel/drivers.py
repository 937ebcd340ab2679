"""The driver registry: which class runs a model. ``torch`` is built in; plugins add more
through ``llmos_register_drivers``, and ``LLMOS_DRIVER`` picks one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmos.drivers.torch.driver import TorchDriver
from llmos.syscalls.errors import InvalidArgument

DriverFactory = Callable[..., Any]
DRIVERS: dict[str, DriverFactory] = {"torch": TorchDriver}


def register_driver(name: str, factory: DriverFactory) -> None:
    """Make driver ``name`` selectable; ``factory(checkpoint, **settings)`` builds one."""
    DRIVERS[name] = factory


def driver_factory(name: str) -> DriverFactory:
    """The factory of driver ``name``."""
    factory = DRIVERS.get(name)
    if factory is None:
        raise InvalidArgument(f"no driver {name!r}; choose from {sorted(DRIVERS)}")
    return factory
