"""``fork`` and the virtual-memory views of ``mem --pages`` and ``proc --pages``."""

from __future__ import annotations

from collections.abc import Iterable

import click
from rich.table import Table

from llmos.cli.app import Shell, echo_json, json_option, pass_shell
from llmos.syscalls.replies import PageEntry, PoolInfo


@click.command()
@click.option(
    "-n",
    "num",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Number of children.",
)
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    help="A seed per child (repeat -n times); without, children replay the parent's random stream.",
)
@json_option
@click.argument("pid", type=int)
@pass_shell
def fork(shell: Shell, pid: int, num: int, seeds: tuple[int, ...], as_json: bool) -> None:
    """Fork process PID into children that share its KV pages (copy-on-write).

    Each child continues from the parent's current token; prints the
    children's pids. Costs one page reference per page, not per token.
    """
    with shell.connect() as client:
        pids = client.fork(pid, num, seeds=list(seeds) or None)
    if as_json:
        echo_json({"parent": pid, "children": pids})
    else:
        click.echo(" ".join(map(str, pids)))


def tiers_table(pools: Iterable[PoolInfo]) -> Table:
    """Pages per tier of each model: total, used, free, cached, shared."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("MODEL")
    table.add_column("TIER")
    for name in ("PAGES", "USED", "FREE", "CACHED", "SHARED"):
        table.add_column(name, justify="right")
    for pool in pools:
        for tier in pool.tiers:
            counts = (tier.num_pages, tier.num_used, tier.num_free, tier.num_cached)
            table.add_row(pool.model, tier.tier, *map(str, counts), str(tier.num_shared))
    return table


def counters_table(pools: Iterable[PoolInfo]) -> Table:
    """Paging and prefix-cache counters, and internal fragmentation."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("MODEL")
    for name in ("PAGE-INS", "PAGE-OUTS", "PREFIX HITS", "HIT RATE", "FRAGMENTATION"):
        table.add_column(name, justify="right")
    for pool in pools:
        table.add_row(
            pool.model,
            str(pool.num_page_ins),
            str(pool.num_page_outs),
            f"{pool.num_prefix_hits}/{pool.num_prefix_hits + pool.num_prefix_misses}",
            f"{pool.prefix_hit_rate:.1%}",
            f"{pool.fragmentation:.1%}",
        )
    return table


def page_map_table(pages: Iterable[PageEntry]) -> Table:
    """A process's page map: logical page, tier, frame, tokens, sharing."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("PAGE", "TIER", "FRAME", "TOKENS", "REFS"):
        table.add_column(name, justify="right" if name != "TIER" else "left")
    table.add_column("CACHED")
    for page in pages:
        cells = (page.index, page.tier, page.frame, page.num_tokens, page.refcount)
        table.add_row(*map(str, cells), "yes" if page.is_cached else "")
    return table


COMMANDS = (fork,)
