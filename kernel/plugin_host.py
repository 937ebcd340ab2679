"""The kernel's side of plugins: loading them, and serving the syscalls they add.

A plugin syscall's arguments are decoded strictly against the Struct the
plugin declared (EINVAL otherwise). The handler runs on a worker thread with
its own event loop (:mod:`llmos.kernel.plugin_thread`), so one that blocks
cannot stall the kernel, within a timeout. An exception, a timeout or a
result of the wrong type becomes a typed error reply, and the processes the
handler started are killed and reaped either way: a plugin never crashes
the kernel or leaks a process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
import pluggy

from llmos.kernel.drivers import register_driver
from llmos.kernel.plugin_handle import PluginHandle
from llmos.kernel.plugin_thread import PluginThreads
from llmos.kernel.policies import register_policy
from llmos.plugins.manager import collect, plugin_infos, plugin_manager
from llmos.plugins.registry import ModelPreset, Registry, SyscallSpec
from llmos.syscalls.errors import (
    InvalidArgument,
    LlmosError,
    NotImplementedSyscall,
    TimedOut,
)
from llmos.syscalls.replies import CallResult, PluginInfo, PluginsReply, SyscallInfo
from llmos.syscalls.requests import Call

if TYPE_CHECKING:
    from llmos.kernel.syscall_table import SyscallTable

log = logging.getLogger("llmos.kernel")


class PluginError(LlmosError):
    """A plugin's syscall failed or broke its contract."""

    code = "EIO"


class PluginHost:
    """The loaded plugins and what they registered."""

    def __init__(self, pm: pluggy.PluginManager, registry: Registry) -> None:
        self.pm = pm
        self.registry = registry
        self.threads = PluginThreads()
        for name, factory in registry.policies.items():
            register_policy(name, factory)
        for name, factory in registry.drivers.items():
            register_driver(name, factory)

    @classmethod
    def load(cls, spec: str | None = None) -> PluginHost:
        """Load the plugins ``spec`` (or ``LLMOS_PLUGINS``) allows; collect what they add."""
        pm = plugin_manager(spec)
        host = cls(pm, collect(pm))
        log.info("plugins: %s", ", ".join(name for name, _ in pm.list_name_plugin()) or "none")
        return host

    def preset(self, name: str) -> ModelPreset | None:
        return self.registry.presets.get(name)

    async def call(self, syscalls: SyscallTable, uid: int, request: Call) -> CallResult:
        """Serve one plugin syscall for ``uid``."""
        spec = self.registry.syscalls.get(request.name)
        if spec is None:
            raise NotImplementedSyscall(f"no syscall {request.name!r} (see `llmosctl plugins`)")
        params = decode_params(spec, request.args)
        handle = PluginHandle(syscalls, uid, nice=getattr(params, "nice", 0) or 0)
        try:
            result = await self.threads.run(spec.handler, handle, params, spec.timeout)
        except TimeoutError:
            raise TimedOut(f"{spec.name} took longer than {spec.timeout:g} s") from None
        except LlmosError:
            raise
        except Exception as exc:
            log.exception("plugin syscall %s failed", spec.name)
            raise PluginError(f"{spec.name} failed in plugin {spec.plugin}: {exc!r}") from exc
        finally:
            await handle.close()
        if not isinstance(result, spec.result):
            kind = type(result).__name__
            raise PluginError(f"{spec.name} returned {kind}, not {spec.result.__name__}")
        return CallResult(name=spec.name, result=msgspec.Raw(msgspec.msgpack.encode(result)))

    def process_exit(self, pid: int, uid: int, model: str, status: str) -> None:
        """Tell every plugin a process exited; one that fails is logged and the others
        still hear of it."""
        for impl in self.pm.hook.llmos_process_exit.get_hookimpls():
            try:
                impl.function(pid=pid, uid=uid, model=model, status=status)
            except Exception:
                log.exception("plugin %s: llmos_process_exit failed", impl.plugin_name)

    def infos(self) -> PluginsReply:
        """``llmosctl plugins``."""
        by_plugin: dict[str, list[str]] = {}
        for spec in self.registry.syscalls.values():
            by_plugin.setdefault(spec.plugin, []).append(spec.name)
        plugins = [
            PluginInfo(
                name=info.name,
                version=info.version,
                hooks=list(info.hooks),
                syscalls=sorted(by_plugin.get(info.name, [])),
            )
            for info in plugin_infos(self.pm)
        ]
        syscalls = [syscall_info(spec) for spec in self.registry.syscalls.values()]
        presets = {p.name: f"{p.task} on {p.model}" for p in self.registry.presets.values()}
        return PluginsReply(plugins=plugins, syscalls=syscalls, presets=presets)


def decode_params(spec: SyscallSpec, args: msgspec.Raw) -> msgspec.Struct:
    try:
        params: msgspec.Struct = msgspec.msgpack.decode(args, type=spec.params)
    except (msgspec.MsgspecError, RecursionError) as exc:
        raise InvalidArgument(f"bad arguments for {spec.name}: {exc}") from None
    validate = getattr(params, "validate", None)
    if callable(validate):
        validate()
    return params


def syscall_info(spec: SyscallSpec) -> SyscallInfo:
    fields = list(getattr(spec.params, "__struct_fields__", ()))
    return SyscallInfo(name=spec.name, plugin=spec.plugin, doc=spec.doc, params=fields)
