"""Options shared by the commands that start processes, and the prompts they build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click

from llmos.syscalls.sampling import SamplingParams

F = TypeVar("F", bound=Callable[..., Any])

# The shell's own defaults where SamplingParams' (temperature 1, no top-p) suit small
# chat models badly; they match SmolLM2's recommended settings. Flags override them.
CLI_DEFAULTS: dict[str, Any] = {"temperature": 0.2, "top_p": 0.9}

# (flag, name, type, help); unset flags fall back to CLI_DEFAULTS, then SamplingParams.
SAMPLING_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--max-tokens", "max_tokens", click.IntRange(min=1), "Most tokens to generate (per turn)."),
    ("--temperature", "temperature", click.FloatRange(min=0.0), "0 is greedy.  [default: 0.2]"),
    (
        "--top-p",
        "top_p",
        click.FloatRange(0.0, 1.0, min_open=True),
        "Nucleus sampling mass.  [default: 0.9]",
    ),
    ("--top-k", "top_k", click.IntRange(min=0), "Sample among the k likeliest (0: off)."),
    ("--min-p", "min_p", click.FloatRange(0.0, 1.0), "Drop tokens below min_p x the top one."),
    ("--seed", "seed", int, "Seed for reproducible sampling."),
)
SAMPLING_NAMES = tuple(name for _, name, _, _ in SAMPLING_FLAGS)


def sampling_options(command: F) -> F:
    """``--model``, the sampling flags, ``--stop`` and ``--nice``."""
    decorators = [
        click.option(
            "--model",
            "-m",
            default="default",
            show_default=True,
            help="Model: a preset, a local path or a hub id.",
        ),
        *(
            click.option(flag, name, type=kind, default=None, help=text)
            for flag, name, kind, text in SAMPLING_FLAGS
        ),
        click.option(
            "--stop", "stop", multiple=True, help="Stop when this string is generated (repeatable)."
        ),
        click.option(
            "--nice",
            type=click.IntRange(-20, 19),
            default=0,
            show_default=True,
            help="Scheduling priority: lower runs first; below 0 needs root.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def pop_sampling(options: dict[str, Any]) -> SamplingParams:
    """Remove the sampling flags from ``options``; the params they give (validated)."""
    given = {name: options.pop(name) for name in SAMPLING_NAMES}
    stop = list(options.pop("stop", ()))
    fields: dict[str, Any] = dict(CLI_DEFAULTS)
    fields.update({name: value for name, value in given.items() if value is not None})
    if stop:
        fields["stop"] = stop
    return SamplingParams(**fields).validate()


def read_prompt(prompt: str, stdin: TextIO) -> str:
    """``prompt`` itself, or all of ``stdin`` when it is ``-``."""
    return stdin.read() if prompt == "-" else prompt


def prompt_fields(prompt: str, raw: bool, system: str | None = None) -> dict[str, Any]:
    """The spawn arguments for ``prompt``: plain text if ``raw``, else chat messages."""
    if raw:
        return {"prompt": prompt}
    return {"messages": chat_messages(prompt, system)}


def chat_messages(content: str, system: str | None = None) -> list[dict[str, str]]:
    """The first turn of a conversation: an optional system message, then the user's."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": content}]
