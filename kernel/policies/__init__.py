"""Scheduling policies and their registry.

Built-in policies register here like any other; a plugin adds its own with
:func:`register_policy` (the plugins' ``llmos_register_policies`` hook
passes it as ``register``).
"""

from __future__ import annotations

from collections.abc import Callable

from llmos.kernel.policies.base import Key, Policy, nice_weight
from llmos.kernel.policies.fair import Fair
from llmos.kernel.policies.fcfs import Fcfs
from llmos.kernel.policies.mlfq import Mlfq
from llmos.kernel.policies.priority import Priority
from llmos.syscalls.errors import InvalidArgument

PolicyFactory = Callable[[], Policy]
POLICIES: dict[str, PolicyFactory] = {}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make ``name`` selectable (``LLMOS_SCHED``, ``llmosctl sched``)."""
    if not name or not name.isidentifier():
        raise InvalidArgument(f"a policy name is an identifier, not {name!r}")
    POLICIES[name] = factory


def make_policy(name: str) -> Policy:
    """A fresh instance of the policy called ``name``."""
    factory = POLICIES.get(name)
    if factory is None:
        raise InvalidArgument(f"no scheduling policy {name!r}; choose from {sorted(POLICIES)}")
    return factory()


for _builtin in (Fcfs, Priority, Fair, Mlfq):
    register_policy(_builtin.name, _builtin)

__all__ = [
    "POLICIES",
    "Fair",
    "Fcfs",
    "Key",
    "Mlfq",
    "Policy",
    "Priority",
    "make_policy",
    "nice_weight",
    "register_policy",
]
