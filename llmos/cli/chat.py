"""``chat``: an interactive conversation with one chat process."""

from __future__ import annotations

from typing import Any

import click

from llmos.cli.app import EXIT_OK, Shell, echo_error, is_tty, json_option, pass_shell
from llmos.cli.options import chat_messages, pop_sampling, sampling_options
from llmos.cli.streaming import Outcome, end_process, follow
from llmos.syscalls.client import Client

PROMPT = ">>> "
EXIT_WORDS = frozenset({"/exit", "/quit", "/bye"})


def read_turn(prompt: str) -> str | None:
    """The next non-empty line the user types; None at EOF or an exit word."""
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            return None
        if line in EXIT_WORDS:
            return None
        if line:
            return line


@click.command()
@sampling_options
@click.option("--system", help="A system message that opens the conversation.")
@json_option
@pass_shell
def chat(shell: Shell, /, system: str | None, as_json: bool, **options: Any) -> None:
    """Chat with a model, turn by turn.

    The conversation is one chat process that keeps its context between
    turns. `/exit` or Ctrl-D ends it (and the process). Reads lines from
    stdin when it is not a terminal, so a conversation can be piped in;
    with --json, prints one JSON object per answer.
    """
    params = pop_sampling(options)
    prompt = PROMPT if is_tty() and not as_json else ""
    if prompt:
        click.echo(f"chatting with {options['model']}; /exit or Ctrl-D to end", err=True)
    first = read_turn(prompt)
    if first is None:
        return
    with shell.connect() as client:
        messages = chat_messages(first, system)
        stream = client.run(messages=messages, params=params, chat=True, **options)
        try:
            ended = converse(client, follow(client, stream, as_json), prompt, as_json)
        finally:
            end_process(client, stream.pid, kill=True)
    raise SystemExit(EXIT_OK if ended is None else ended.exit_code)


def converse(client: Client, outcome: Outcome, prompt: str, as_json: bool) -> Outcome | None:
    """Read turns and stream answers until the user ends (None) or the process exits."""
    while not outcome.is_exited:
        line = read_turn(prompt)
        if line is None:
            return None
        outcome = follow(client, client.write_stream(outcome.pid, line), as_json)
    if outcome.exit_code == EXIT_OK:
        echo_error(f"process {outcome.pid} exited ({outcome.status}); the conversation is over")
    return outcome


COMMANDS = (chat,)
