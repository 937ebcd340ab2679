"""Loading plugins: the built-ins from ``DEFAULT_PLUGINS``, then the ``llmos`` entry points.

``LLMOS_PLUGINS`` limits which load: unset loads all; ``none`` loads none; a
comma-separated list loads only those names (a built-in's name is its
module's last part, an outside plugin's its entry-point name); a dotted name
in the list (``mypkg.plugin``) is imported as a module and loaded too. Tests
set it, so they never load whatever happens to be installed. A plugin that
fails to import, or implements a hook no spec knows (a misspelt name), is
logged and left out; the others load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import pluggy

from llmos.plugins import hookspecs
from llmos.plugins.registry import Registry

log = logging.getLogger("llmos.plugins")
GROUP = "llmos"
DEFAULT_PLUGINS = (
    "llmos.plugins.translation",
    "llmos.plugins.summarisation",
    "llmos.plugins.codegen",
    "llmos.plugins.music",
    "llmos.plugins.qa",
)


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``llmosctl plugins`` lists it."""

    name: str
    version: str
    hooks: tuple[str, ...]


def wanted(spec: str | None = None) -> set[str] | None:
    """The plugin names ``spec`` (default: ``$LLMOS_PLUGINS``) allows; None means all."""
    value = (os.environ.get("LLMOS_PLUGINS", "") if spec is None else spec).strip()
    if not value:
        return None
    if value.lower() == "none":
        return set()
    return {name.strip() for name in value.split(",") if name.strip()}


def plugin_manager(spec: str | None = None) -> pluggy.PluginManager:
    """A plugin manager with the hookspecs and every plugin ``spec`` allows loaded."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allowed = wanted(spec)
    for module_name in DEFAULT_PLUGINS:
        name = module_name.rsplit(".", 1)[-1]
        if allowed is None or name in allowed:
            register(pm, name, lambda module=module_name: importlib.import_module(module))
    for entry in importlib.metadata.entry_points(group=GROUP):
        if (allowed is None or entry.name in allowed) and pm.get_plugin(entry.name) is None:
            register(pm, entry.name, entry.load)
    for module_name in sorted(name for name in allowed or () if "." in name):
        register(pm, module_name, lambda module=module_name: importlib.import_module(module))
    drop_unknown_hooks(pm)
    return pm


def drop_unknown_hooks(pm: pluggy.PluginManager) -> None:
    """``check_pending``: a plugin with a hook no spec knows (misspelt) is unregistered."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            log.error("plugin %s left out: %s", pm.get_name(exc.plugin), exc)
            pm.unregister(exc.plugin)


def register(pm: pluggy.PluginManager, name: str, load: Callable[[], object]) -> None:
    """Load and register one plugin; one that fails to load is logged and left out."""
    try:
        pm.register(load(), name=name)
    except Exception:
        log.exception("plugin %s failed to load; going on without it", name)


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Name, version and hooks of every loaded plugin."""
    infos = []
    for name, plugin in pm.list_name_plugin():
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        infos.append(PluginInfo(name, version_of(plugin), hooks))
    return sorted(infos, key=lambda info: info.name)


def version_of(plugin: object) -> str:
    module = getattr(plugin, "__name__", "")
    if module.startswith("llmos."):
        from llmos import __version__

        return __version__
    try:
        return importlib.metadata.version(module.split(".")[0].replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(plugin, "__version__", "?"))


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call every registration hook into one registry, noting which plugin added what."""
    registry = Registry()
    hooks = {
        "llmos_register_syscalls": registry.add_syscall,
        "llmos_register_models": registry.add_preset,
        "llmos_register_policies": registry.add_policy,
        "llmos_register_drivers": registry.add_driver,
    }
    for hook_name, register in hooks.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            registry.current_plugin = impl.plugin_name
            try:
                impl.function(register=register)
            except Exception:
                log.exception("plugin %s: %s failed; skipped", impl.plugin_name, hook_name)
    registry.current_plugin = ""
    return registry
