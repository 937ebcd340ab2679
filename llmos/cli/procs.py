"""``ps``, ``proc``, ``wait`` and ``kill``: look at processes, collect them, signal them."""

from __future__ import annotations

import click

from llmos.cli.app import EXIT_FAILURE, Shell, echo_error, echo_json, json_option, pass_shell
from llmos.cli.render import console, key_value_text, proc_rows, ps_table
from llmos.cli.streaming import SUCCESS_STATUSES
from llmos.cli.vm import page_map_table
from llmos.syscalls.client import Client
from llmos.syscalls.errors import LlmosError
from llmos.syscalls.replies import Waited

SIGNALS = ("TERM", "KILL", "STOP", "CONT")


@click.command()
@click.option("--all", "-a", "show_all", is_flag=True, help="Show every user's processes.")
@json_option
@pass_shell
def ps(shell: Shell, show_all: bool, as_json: bool) -> None:
    """List processes: yours, or everyone's with --all.

    PROMPT and GEN count tokens; PAGES are the KV pages a process holds;
    STATUS is its exit status once it has exited.
    """
    with shell.connect() as client:
        procs = client.ps(all=show_all)
    if as_json:
        echo_json(procs)
    else:
        console().print(ps_table(procs))


@click.command()
@click.option("--pages", is_flag=True, help="Also the page map: where each KV page lives.")
@json_option
@click.argument("pid", type=int)
@pass_shell
def proc(shell: Shell, pid: int, pages: bool, as_json: bool) -> None:
    """Show everything the kernel knows about process PID.

    With --pages, its page map: each logical page's tier (device, host,
    disk), frame, tokens, reference count (shared by fork or the prefix
    cache) and whether the prefix cache holds it.
    """
    with shell.connect() as client:
        info = client.proc(pid)
        page_entries = client.page_map(pid) if pages else []
    if as_json:
        echo_json({"proc": info, "pages": page_entries} if pages else info)
        return
    click.echo(key_value_text(proc_rows(info)))
    if pages:
        console().print(page_map_table(page_entries))


def waited_status(waited: Waited) -> str:
    """The exit status of a collected process."""
    return waited.proc.exit_status or "unknown"


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Give up after this many seconds (exit 1).  [default: none]",
)
@json_option
@click.argument("pid", type=int)
@pass_shell
def wait(shell: Shell, pid: int, timeout: float | None, as_json: bool) -> None:
    """Wait for process PID to exit, print its text, and reap it.

    The text goes to stdout, the exit status to stderr. Exits 0 if the
    process stopped or reached its length limit, 1 otherwise.
    """
    with shell.connect() as client:
        waited = client.wait(pid, timeout=timeout)
    status = waited_status(waited)
    if as_json:
        echo_json(waited)
    else:
        click.echo(waited.text, nl=not waited.text.endswith("\n"))
        error = f": {waited.proc.error}" if waited.proc.error else ""
        num_tokens = waited.proc.num_generated_tokens
        echo_error(f"process {pid} exited with status {status}{error} ({num_tokens} tokens)")
    raise SystemExit(0 if status in SUCCESS_STATUSES else EXIT_FAILURE)


@click.command()
@click.option(
    "--signal",
    "-s",
    "signal",
    type=click.Choice(SIGNALS, case_sensitive=False),
    default="TERM",
    show_default=True,
    help="TERM or KILL end a process; STOP pauses it, CONT resumes it.",
)
@json_option
@click.argument("pids", metavar="PID...", type=int, nargs=-1, required=True)
@pass_shell
def kill(shell: Shell, signal: str, pids: tuple[int, ...], as_json: bool) -> None:
    """Send a signal to each PID (TERM by default).

    Only a process's owner (or root) may signal it. Each failure is
    reported on stderr; exits 1 if any failed.
    """
    results = []
    with shell.connect() as client:
        for pid in pids:
            results.append(signal_one(client, pid, signal.upper()))
    if as_json:
        echo_json(results)
    if any(result["code"] for result in results):
        raise SystemExit(EXIT_FAILURE)


def signal_one(client: Client, pid: int, signal: str) -> dict[str, object]:
    """Signal one pid; report a failure on stderr. A JSON-ready result."""
    try:
        client.kill(pid, signal=signal)
    except LlmosError as error:
        echo_error(f"kill {pid}: {error.message} ({error.code})")
        return {"pid": pid, "signal": signal, "code": error.code, "message": error.message}
    return {"pid": pid, "signal": signal, "code": None, "message": None}


COMMANDS = (ps, proc, wait, kill)
