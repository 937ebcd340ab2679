"""The ``llmosctl`` group: global options, the kernel connection, errors and exit codes.

Every command is a thin shell over one or a few syscalls: it builds the
request, sends it through :class:`~llmos.syscalls.client.Client`, and prints
the reply. An :class:`LlmosError` anywhere becomes one line on stderr and an
exit code from :data:`EXIT_CODES`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from llmos.syscalls.client import Client
from llmos.syscalls.errors import LlmosError
from llmos.syscalls.paths import default_socket_path
from llmos.syscalls.replies import Reply

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
# Error code -> exit status; any code not listed exits EXIT_FAILURE.
EXIT_CODES: dict[str, int] = {
    "EINVAL": 2,  # the same as a usage error
    "ECONNREFUSED": 3,  # no kernel, as `systemctl status` of a stopped unit
    "EPERM": 4,
    "ENOENT": 5,
}
CLIENT_NAME = "llmosctl"


def exit_code_for(code: str) -> int:
    """The exit status for an error ``code``."""
    return EXIT_CODES.get(code, EXIT_FAILURE)


def error_line(error: LlmosError, socket_path: Path) -> str:
    """The one line an error prints on stderr."""
    if error.code != "ECONNREFUSED":
        return f"llmosctl: {error.message} ({error.code})"
    line = f"llmosctl: no kernel is running on {socket_path}; start one with `llmosctl up`"
    # Nothing listening is the usual cause; anything else (a permission, say) is worth showing.
    return line if error.message.startswith("no kernel") else f"{line} ({error.message})"


@dataclass(frozen=True)
class Shell:
    """What every command shares: where the kernel's socket is."""

    socket_path: Path

    def connect(self, timeout: float | None = None) -> Client:
        """A client connected to the kernel (raises ``KernelUnavailable`` if none answers)."""
        return Client(self.socket_path, timeout=timeout, name=CLIENT_NAME)


pass_shell = click.make_pass_decorator(Shell)


class KernelGroup(click.Group):
    """A group that lists commands in the order they were added and maps errors to exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmosError as error:
            shell = ctx.find_object(Shell)
            socket_path = shell.socket_path if shell else default_socket_path()
            click.echo(error_line(error, socket_path), err=True)
            ctx.exit(exit_code_for(error.code))
        except KeyboardInterrupt:
            click.echo(err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=KernelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LLMOS_SOCKET",
    show_envvar=True,
    help="The kernel's Unix socket  [default: $XDG_RUNTIME_DIR/llmos/kernel.sock]",
)
@click.version_option(package_name="llmos", prog_name="llmosctl")
@click.pass_context
def cli(ctx: click.Context, socket_path: Path | None) -> None:
    """llmosctl: the shell of llmos.

    It talks to the resident kernel over its Unix socket.

    Start a kernel with `llmosctl up`, run a prompt with `llmosctl run`,
    list processes with `llmosctl ps`. Every command takes --json to print
    machine-readable JSON instead of text.

    \b
    Exit codes:
      0    success
      1    failure: a process ended with an error or was killed, a timeout, ...
      2    usage error or invalid argument (EINVAL)
      3    no kernel is running on the socket (ECONNREFUSED)
      4    permission denied (EPERM)
      5    no such process or model (ENOENT)
      130  interrupted (Ctrl-C)
    """
    ctx.obj = Shell(socket_path or default_socket_path())


def json_option(command: F) -> F:
    """The ``--json`` flag every command takes, passed as ``as_json``."""
    flag = click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
    )
    return flag(command)


def echo_json(value: Any) -> None:
    """Print ``value`` (structs, lists, dicts) as one line of JSON on stdout.

    A reply's request ``id`` is dropped: it means nothing outside the connection.
    """
    builtins = msgspec.to_builtins(value)
    if isinstance(value, Reply):
        builtins.pop("id", None)
    click.echo(msgspec.json.encode(builtins).decode())


def echo_error(message: str) -> None:
    """Print one ``llmosctl:`` line on stderr."""
    click.echo(f"llmosctl: {message}", err=True)


def is_tty(stream: Any = None) -> bool:
    """Whether ``stream`` (stdin by default) is a terminal."""
    stream = sys.stdin if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
