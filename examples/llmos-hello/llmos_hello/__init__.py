"""An example llmos plugin: a ``hello`` syscall, a command, a preset, an exit counter."""

from __future__ import annotations

from typing import Any

import click
import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl

__version__ = "0.1.0"
EXITS: dict[str, int] = {}  # exit status -> processes that ended with it, since boot


class HelloParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Whom to greet, with which model."""

    name: str
    model: str = "hello_model"


class HelloResult(msgspec.Struct, kw_only=True):
    """The greeting, the model's own words, and the exits seen so far."""

    greeting: str
    model_says: str
    exits: dict[str, int]


async def hello(kernel: KernelHandle, params: HelloParams) -> HelloResult:
    """Greet ``name``, and let the model add a line of its own."""
    said = await kernel.generate(
        messages=[{"role": "user", "content": f"Say hello to {params.name} in five words."}],
        model=params.model,
        temperature=0.0,
        max_tokens=16,
    )
    return HelloResult(greeting=f"Hello, {params.name}!", model_says=said.strip(), exits=EXITS)


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("hello", hello, HelloParams, HelloResult, timeout=60.0)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register("hello_model", "default", "hello", "the default model, for greetings")


@hookimpl
def llmos_process_exit(pid: int, uid: int, model: str, status: str) -> None:
    EXITS[status] = EXITS.get(status, 0) + 1


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(hello_command)


@click.command("hello")
@click.argument("name")
@click.pass_obj
def hello_command(shell: Any, name: str) -> None:
    """Have the kernel greet NAME."""
    with shell.connect() as client:
        result = client.call("hello", name=name)
    click.echo(result["greeting"])
    click.echo(result["model_says"])
