"""What plugins registered: syscalls, model presets, policies, drivers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from llmos.syscalls.errors import InvalidArgument

Handler = Callable[[Any, Any], Awaitable[Any]]
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class SyscallSpec:
    """A plugin syscall: its handler and the Structs of its parameters and result."""

    name: str
    handler: Handler
    params: type[msgspec.Struct]
    result: type[msgspec.Struct]
    timeout: float = DEFAULT_TIMEOUT
    plugin: str = ""

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.handler) or ""


@dataclass(frozen=True)
class ModelPreset:
    """A name such as ``machine_translation``: which model, for which task, with what defaults."""

    name: str
    model: str
    task: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registry:
    """Everything the plugins of one kernel registered."""

    syscalls: dict[str, SyscallSpec] = field(default_factory=dict)
    presets: dict[str, ModelPreset] = field(default_factory=dict)
    policies: dict[str, Callable[[], Any]] = field(default_factory=dict)
    drivers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    current_plugin: str = ""

    def add_syscall(
        self,
        name: str,
        handler: Handler,
        params: type[msgspec.Struct],
        result: type[msgspec.Struct],
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """The ``register`` of ``llmos_register_syscalls``."""
        if not name.isidentifier() or name in self.syscalls:
            raise InvalidArgument(f"syscall name {name!r} is not an identifier or is taken")
        if not inspect.iscoroutinefunction(handler):
            raise InvalidArgument(f"the handler of {name!r} must be an async function")
        for kind in (params, result):
            if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
                raise InvalidArgument(f"{name!r}: params and result must be msgspec Structs")
        spec = SyscallSpec(name, handler, params, result, timeout, self.current_plugin)
        self.syscalls[name] = spec

    def add_preset(
        self,
        name: str,
        model: str,
        task: str,
        description: str = "",
        defaults: dict[str, Any] | None = None,
    ) -> None:
        """The ``register`` of ``llmos_register_models``."""
        self.presets[name] = ModelPreset(name, model, task, description, dict(defaults or {}))

    def add_policy(self, name: str, factory: Callable[[], Any]) -> None:
        """The ``register`` of ``llmos_register_policies``."""
        self.policies[name] = factory

    def add_driver(self, name: str, factory: Callable[..., Any]) -> None:
        """The ``register`` of ``llmos_register_drivers``."""
        self.drivers[name] = factory
