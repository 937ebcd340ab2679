"""What the commands plugins add share: reading input, calling the syscall, printing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from llmos.cli.app import Shell, echo_json


def read_text(text: str) -> str:
    """``text`` itself, or all of stdin when it is ``-``."""
    return sys.stdin.read() if text == "-" else text


def read_file(source: str) -> str:
    """The contents of file ``source``, or of stdin when it is ``-``."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror}") from None


def call_and_print(
    shell: Shell, name: str, args: dict[str, Any], field: str, as_json: bool = False
) -> dict[str, Any]:
    """Call plugin syscall ``name``; print the result's ``field`` (everything with --json)."""
    with shell.connect() as client:
        result = client.call(name, **args)
    if as_json:
        echo_json(result)
    else:
        click.echo(result.get(field, ""))
    return result
