"""``run``, ``spawn`` and ``write``: start processes and talk to them."""

from __future__ import annotations

import sys
from typing import Any

import click

from llmos.cli.app import Shell, echo_error, echo_json, json_option, pass_shell
from llmos.cli.options import pop_sampling, prompt_fields, read_prompt, sampling_options
from llmos.cli.streaming import end_process, follow

PROMPT_ARGUMENT = click.argument("prompt")
RAW_OPTION = click.option(
    "--raw", is_flag=True, help="Send PROMPT as plain text to complete, not as a user message."
)
CHAT_OPTION = click.option(
    "--chat/--no-chat",
    default=False,
    show_default=True,
    help="Keep the process waiting for the next turn (see `write`) after it answers.",
)


def spawn_arguments(prompt: str, options: dict[str, Any]) -> dict[str, Any]:
    """Client.spawn arguments from the PROMPT argument and the shared options."""
    params = pop_sampling(options)
    text = read_prompt(prompt, sys.stdin)
    return {**prompt_fields(text, options.pop("raw")), "params": params, **options}


@click.command()
@sampling_options
@RAW_OPTION
@CHAT_OPTION
@json_option
@PROMPT_ARGUMENT
@pass_shell
def run(shell: Shell, /, prompt: str, as_json: bool, **options: Any) -> None:
    """Run PROMPT and stream the answer to stdout.

    PROMPT goes to the model as one user message; --raw sends it as plain
    text to complete; `-` reads it from stdin. Exits 0 when the process
    stops or reaches its length limit, 1 if it ends otherwise, 130 on
    Ctrl-C (which kills it). A process run here is reaped when it ends.
    """
    arguments = spawn_arguments(prompt, options)
    with shell.connect() as client:
        stream = client.run(**arguments)
        outcome = follow(client, stream, as_json)
        if outcome.is_exited:
            end_process(client, stream.pid)
    if not outcome.is_exited and not as_json:
        echo_error(f"process {outcome.pid} waits for the next turn: llmosctl write {outcome.pid}")
    raise SystemExit(outcome.exit_code)


@click.command()
@sampling_options
@RAW_OPTION
@CHAT_OPTION
@json_option
@PROMPT_ARGUMENT
@pass_shell
def spawn(shell: Shell, /, prompt: str, as_json: bool, **options: Any) -> None:
    """Start a process on PROMPT and print its pid.

    Takes the options of `run`. Collect it with `wait`, watch it with
    `ps`, stop it with `kill`.
    """
    arguments = spawn_arguments(prompt, options)
    with shell.connect() as client:
        pid = client.spawn(**arguments)
    if as_json:
        echo_json({"pid": pid})
    else:
        click.echo(pid)


@click.command()
@json_option
@click.argument("pid", type=int)
@click.argument("content")
@pass_shell
def write(shell: Shell, pid: int, content: str, as_json: bool) -> None:
    """Send the next user turn to a chat process and stream its answer.

    CONTENT goes to process PID, which must be waiting for input (see
    `run --chat`, `spawn --chat`); `-` reads it from stdin. Exit codes as
    for `run`.
    """
    text = read_prompt(content, sys.stdin)
    with shell.connect() as client:
        stream = client.write_stream(pid, text)
        outcome = follow(client, stream, as_json)
    raise SystemExit(outcome.exit_code)


COMMANDS = (run, spawn, write)
