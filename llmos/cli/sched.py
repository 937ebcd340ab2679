"""``sched`` and ``nice``: the scheduling policy and process priorities."""

from __future__ import annotations

import click
from rich.table import Table

from llmos.cli.app import Shell, echo_json, json_option, pass_shell
from llmos.cli.render import console
from llmos.syscalls.replies import SchedReply


@click.command()
@json_option
@click.argument("policy", required=False)
@pass_shell
def sched(shell: Shell, policy: str | None, as_json: bool) -> None:
    """Show the scheduling policy, or switch to POLICY.

    Policies: fcfs (first come, first served), priority (by nice, with
    aging), fair (per-uid fair share of tokens served), mlfq (short jobs
    first). Switching takes the kernel's owner or root. Also shows the
    service each uid has received.
    """
    with shell.connect() as client:
        reply = client.sched(policy)
    if as_json:
        echo_json(reply)
        return
    click.echo(f"policy: {reply.policy}  (available: {', '.join(reply.policies)})")
    if reply.service:
        console().print(service_table(reply))


def service_table(reply: SchedReply) -> Table:
    """Tokens and device time each uid has received."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("UID", "PROMPT TOKENS", "OUTPUT TOKENS", "DEVICE TIME"):
        table.add_column(name, justify="right")
    for row in reply.service:
        cells = (row.uid, row.num_prefill_tokens, row.num_decode_tokens)
        table.add_row(*map(str, cells), f"{row.device_seconds:.2f}s")
    return table


@click.command()
@click.option(
    "-n",
    "--adjustment",
    "nice",
    type=click.IntRange(-20, 19),
    required=True,
    help="The new nice value: -20 runs first, 19 last.",
)
@json_option
@click.argument("pid", type=int)
@pass_shell
def nice(shell: Shell, pid: int, nice: int, as_json: bool) -> None:
    """Set the nice value of process PID (only its owner or root; below 0, root)."""
    with shell.connect() as client:
        client.renice(pid, nice)
    if as_json:
        echo_json({"pid": pid, "nice": nice})
    else:
        click.echo(f"{pid}: nice {nice}")


COMMANDS = (sched, nice)
