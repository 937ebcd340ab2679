"""The driver registry: which class runs a model. ``torch`` is built in; plugins add more
through ``llmos_register_drivers``, and ``LLMOS_DRIVER`` picks one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.drivers.torch.driver import TorchDriver
from llmos.drivers.torch.swap_space import swap_file_path
from llmos.kernel.config import EngineConfig
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


def driver_settings(config: EngineConfig, data_dir: Path | None = None) -> dict[str, Any]:
    """The keyword arguments every driver factory receives, from the engine's settings."""
    root = resolve_data_dir(data_dir)
    return {
        "dtype": config.dtype,
        "device": config.device,
        "page_size": config.page_size,
        "kv_budget": config.kv_budget,
        "max_model_len": config.max_model_len,
        "host_swap": config.host_swap,
        "disk_swap": config.disk_swap,
        "swap_file": swap_file_path(root),
        "attention": config.attention,
        "native_dir": root / "native",
    }
