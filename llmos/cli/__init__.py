"""``llmosctl``: the shell of llmos. Each module holds one group of commands.

The commands are added to :data:`cli` here, in the order ``--help`` lists them.
"""

from __future__ import annotations

from llmos.cli import chat, daemon, generate, plugins, procs, sched, system, vm
from llmos.cli.app import cli

for _module in (daemon, generate, chat, procs, system, vm, sched, plugins):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
plugins.add_plugin_commands(cli)


def main() -> None:
    """The ``llmosctl`` entry point."""
    cli.main(prog_name="llmosctl")


__all__ = ["cli", "main"]
