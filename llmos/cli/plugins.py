"""``plugins``, and the commands plugins add through the ``llmos_cli`` hook."""

from __future__ import annotations

import click
from rich.table import Table

from llmos.cli.app import Shell, echo_error, echo_json, json_option, pass_shell
from llmos.cli.render import console
from llmos.syscalls.replies import PluginsReply


@click.command()
@json_option
@pass_shell
def plugins(shell: Shell, as_json: bool) -> None:
    """List the kernel's plugins, their hooks and the syscalls they add (like lsmod)."""
    with shell.connect() as client:
        reply = client.plugins()
    if as_json:
        echo_json(reply)
        return
    out = console()
    out.print(plugins_table(reply))
    if reply.presets:
        out.print()
        for name, what in sorted(reply.presets.items()):
            out.print(f"preset {name}: {what}")


def plugins_table(reply: PluginsReply) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("NAME", "VERSION", "SYSCALLS", "HOOKS"):
        table.add_column(name)
    for plugin in reply.plugins:
        hooks = ", ".join(h.removeprefix("llmos_") for h in plugin.hooks)
        table.add_row(plugin.name, plugin.version, ", ".join(plugin.syscalls) or "-", hooks)
    return table


def add_plugin_commands(cli: click.Group) -> None:
    """Let every allowed plugin add its commands; a broken plugin costs only its own."""
    from llmos.plugins.manager import plugin_manager

    try:
        pm = plugin_manager()
    except Exception as exc:  # a broken plugin must not take the shell down with it
        echo_error(f"plugins not loaded: {exc}")
        return
    for impl in pm.hook.llmos_cli.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:
            echo_error(f"plugin {impl.plugin_name} could not add its commands: {exc}")


COMMANDS = (plugins,)
