"""The hooks a plugin implements. Markers are named ``llmos``.

Every built-in feature that is a plugin (the task syscalls, model presets)
goes through these same hooks, registered from ``DEFAULT_PLUGINS`` exactly as
a third-party plugin arrives through the ``llmos`` entry-point group.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("llmos")
hookimpl = pluggy.HookimplMarker("llmos")


@hookspec
def llmos_register_syscalls(register: Any) -> None:
    """Add syscalls. Called once in the kernel at boot.

    ``register(name, handler, params, result, timeout=...)``: ``handler`` is an
    ``async def handler(kernel: KernelHandle, params) -> result`` where
    ``params`` and ``result`` are msgspec Structs; ``kernel`` spawns, forks,
    streams and waits processes under the caller's uid and nice. The
    handler's docstring is the syscall's documentation.
    """


@hookspec
def llmos_register_models(register: Any) -> None:
    """Add model presets, such as ``machine_translation``. Called in the kernel at boot.

    ``register(name, model, task, description="", defaults=None)``: ``model``
    is what the preset loads (a preset name, local path or hub id), ``task``
    the syscall it is for, ``defaults`` the sampling parameters it suggests.
    """


@hookspec
def llmos_register_policies(register: Any) -> None:
    """Add scheduling policies. Called in the kernel at boot.

    ``register(name, factory)``: ``factory()`` returns a
    :class:`llmos.kernel.policies.Policy`; the name becomes selectable with
    ``LLMOS_SCHED`` and ``llmosctl sched``.
    """


@hookspec
def llmos_register_drivers(register: Any) -> None:
    """Add model drivers. Called in the kernel at boot.

    ``register(name, factory)``: ``factory(checkpoint, **engine_settings)``
    returns a driver with the torch driver's interface; ``LLMOS_DRIVER``
    chooses one.
    """


@hookspec
def llmos_cli(cli: Any) -> None:
    """Add ``llmosctl`` commands: ``cli`` is the click group. Called in ``llmosctl``."""


@hookspec
def llmos_process_exit(pid: int, uid: int, model: str, status: str) -> None:
    """A process exited with ``status``. Called in the kernel's event loop; keep it quick."""
