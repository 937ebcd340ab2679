"""``mem``, ``models``, ``load``, ``unload`` and ``sysinfo``: the kernel's resources."""

from __future__ import annotations

import sys

import click

from llmos.cli.app import Shell, echo_json, is_tty, json_option, pass_shell
from llmos.cli.progress import activity
from llmos.cli.render import (
    console,
    describe_model,
    key_value_text,
    memory_rows,
    models_table,
    pools_table,
    sysinfo_rows,
)
from llmos.cli.vm import counters_table, tiers_table


@click.command()
@click.option(
    "--pages", is_flag=True, help="Also pages per tier, paging and prefix-cache counters."
)
@json_option
@pass_shell
def mem(shell: Shell, pages: bool, as_json: bool) -> None:
    """Show host, kernel, device and KV pool memory.

    Pool sizes are in pages of PAGE SIZE tokens; a page holds PAGE BYTES of
    keys and values across all layers. FREE counts pages only the prefix
    cache holds (they are evicted on demand). With --pages: every tier
    (device, host swap, disk swap), page-ins/outs, the prefix-cache hit rate
    and internal fragmentation (reserved slots holding no token).
    """
    with shell.connect() as client:
        info = client.meminfo()
    if as_json:
        echo_json(info)
        return
    out = console()
    click.echo(key_value_text(memory_rows(info)))
    out.print()
    out.print(pools_table(info.pools))
    if pages:
        out.print()
        out.print(tiers_table(info.pools))
        out.print()
        out.print(counters_table(info.pools))


@click.command()
@json_option
@pass_shell
def models(shell: Shell, as_json: bool) -> None:
    """List the loaded models and the presets that can be loaded."""
    with shell.connect() as client:
        found = client.models()
    if as_json:
        echo_json(found)
    else:
        console().print(models_table(found))


@click.command()
@click.option(
    "--keep-alive",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Seconds to keep it loaded once idle  [default: the kernel's]",
)
@json_option
@click.argument("model")
@pass_shell
def load(shell: Shell, model: str, keep_alive: float | None, as_json: bool) -> None:
    """Load MODEL into the kernel.

    MODEL is a preset, a local path or a hub id. Shows a progress bar
    with the elapsed time while it loads (a download included), then what
    was loaded.
    """
    with shell.connect() as client, activity(f"loading {model}…", enabled=is_tty(sys.stderr)):
        loaded = client.load(model, keep_alive=keep_alive)
    if as_json:
        echo_json(loaded)
    else:
        click.echo(f"loaded {describe_model(loaded)}")


@click.command()
@json_option
@click.argument("model")
@pass_shell
def unload(shell: Shell, model: str, as_json: bool) -> None:
    """Unload MODEL; fails (EBUSY) while a live process uses it."""
    with shell.connect() as client:
        client.unload(model)
    if as_json:
        echo_json({"model": model, "unloaded": True})
    else:
        click.echo(f"unloaded {model}")


@click.command()
@json_option
@pass_shell
def sysinfo(shell: Shell, as_json: bool) -> None:
    """Show the kernel at a glance.

    Version, protocol, pid, uptime, device, driver, policy and models.
    """
    with shell.connect() as client:
        info = client.sysinfo()
    if as_json:
        echo_json(info)
    else:
        click.echo(key_value_text(sysinfo_rows(info)))


COMMANDS = (mem, models, load, unload, sysinfo)
