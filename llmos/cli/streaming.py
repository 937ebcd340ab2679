"""Printing a process's stream as it arrives, and what its end means for the exit code."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import click

from llmos.cli.app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, echo_error, echo_json
from llmos.syscalls.client import Client, ProcessStream
from llmos.syscalls.errors import LlmosError
from llmos.syscalls.events import ExitEvent, WaitingEvent

WAITING = "waiting"
SUCCESS_STATUSES = frozenset({"stop", "length", WAITING})
REAP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Outcome:
    """How a stream ended: an exit status (or ``waiting``) and any error."""

    pid: int
    status: str
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.status in SUCCESS_STATUSES else EXIT_FAILURE

    @property
    def is_exited(self) -> bool:
        return self.status != WAITING


def outcome_of(stream: ProcessStream) -> Outcome:
    """The outcome of a stream that has ended."""
    match stream.final:
        case ExitEvent(status=status, error=error):
            return Outcome(stream.pid, status, error)
        case WaitingEvent():
            return Outcome(stream.pid, WAITING)
        case _:
            return Outcome(stream.pid, "error", "the stream ended without an exit")


def echo_stream(stream: ProcessStream) -> Outcome:
    """Print the stream's text as it arrives (flushed per chunk), then a newline."""
    last_chunk = ""
    for last_chunk in stream.text_chunks():
        click.echo(last_chunk, nl=False)
    if not last_chunk.endswith("\n"):
        click.echo()
    return outcome_of(stream)


def collect_stream(stream: ProcessStream) -> Outcome:
    """Read the stream to its end without printing."""
    for _ in stream:
        pass
    return outcome_of(stream)


def stream_json(stream: ProcessStream, outcome: Outcome) -> None:
    """The one JSON object ``run --json`` prints."""
    echo_json(
        {
            "pid": stream.pid,
            "text": stream.text,
            "exit_status": outcome.status,
            "error": outcome.error,
            "num_tokens": len(stream.token_ids),
        }
    )


def report_outcome(outcome: Outcome) -> None:
    """Say on stderr why a process ended, unless it ended normally."""
    if outcome.exit_code == EXIT_OK:
        return
    detail = f": {outcome.error}" if outcome.error else ""
    echo_error(f"process {outcome.pid} ended with status {outcome.status}{detail}")


def end_process(client: Client, pid: int, kill: bool = False) -> None:
    """Reap ``pid`` once it exits, killing it (TERM) first if ``kill``; errors are ignored.

    The shell reaps what it ran in the foreground, as a Unix shell does, so
    those processes do not linger as zombies.
    """
    if kill:
        with contextlib.suppress(LlmosError):
            client.kill(pid)
    with contextlib.suppress(LlmosError):
        client.wait(pid, timeout=REAP_TIMEOUT)


def follow(client: Client, stream: ProcessStream, as_json: bool) -> Outcome:
    """Print (or collect) a stream; on Ctrl-C kill its process and exit 130."""
    try:
        outcome = collect_stream(stream) if as_json else echo_stream(stream)
    except KeyboardInterrupt:
        end_process(client, stream.pid, kill=True)
        click.echo(err=True)
        echo_error(f"interrupted; killed process {stream.pid}")
        raise SystemExit(EXIT_INTERRUPTED) from None
    if as_json:
        stream_json(stream, outcome)
    else:
        report_outcome(outcome)
    return outcome
