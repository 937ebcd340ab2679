"""Test double: a plugin that adds a scheduling policy and a driver, and records exits.

``double_fcfs`` is first come, first served under another name;
``double_torch`` is the torch driver, counted each time it is built.
``llmos_process_exit`` records every exit. The ``double_record`` syscall
reports what was recorded, so a test can see the hooks ran inside the kernel.
"""

from __future__ import annotations

from typing import Any

import msgspec

from llmos.kernel.policies import Fcfs
from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl

__version__ = "0.0.2"
POLICY = "double_fcfs"
DRIVER = "double_torch"


class ExitRecord(msgspec.Struct, kw_only=True):
    """One ``llmos_process_exit`` call."""

    pid: int
    uid: int
    model: str
    status: str


EXITS: list[ExitRecord] = []
DRIVER_BUILDS: list[str] = []


class DoubleFcfs(Fcfs):
    """First come, first served, registered by a plugin."""

    name = POLICY
    description = "test double: fcfs under a plugin's name"


def double_torch(checkpoint: Any, **settings: Any) -> Any:
    """The torch driver, with each build recorded."""
    from llmos.drivers.torch.driver import TorchDriver

    DRIVER_BUILDS.append(str(getattr(checkpoint, "name", checkpoint)))
    return TorchDriver(checkpoint, **settings)


class Empty(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """No arguments."""


class Record(msgspec.Struct, kw_only=True):
    """What the hooks of this plugin saw in this kernel."""

    exits: list[ExitRecord]
    num_driver_builds: int


async def double_record(kernel: KernelHandle, params: Empty) -> Record:
    """The exits recorded and the number of ``double_torch`` drivers built."""
    return Record(exits=list(EXITS), num_driver_builds=len(DRIVER_BUILDS))


@hookimpl
def llmos_register_policies(register: Any) -> None:
    register(POLICY, DoubleFcfs)


@hookimpl
def llmos_register_drivers(register: Any) -> None:
    register(DRIVER, double_torch)


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("double_record", double_record, Empty, Record)


@hookimpl
def llmos_process_exit(pid: int, uid: int, model: str, status: str) -> None:
    EXITS.append(ExitRecord(pid=pid, uid=uid, model=model, status=status))
