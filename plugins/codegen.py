"""``codegen``: code from a description, code only (fences stripped).

Python results are checked with ``ast.parse``; on a syntax error the model
gets one more try with the error shown; the reply says whether the code
parses. The default model is tiny (135M parameters): keep requests small.
"""

from __future__ import annotations

import ast
from typing import Any

import click
import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl
from llmos.plugins.text import strip_fences
from llmos.syscalls.errors import InvalidArgument

LANGUAGES = ("python", "javascript", "typescript", "c", "cpp", "rust", "go", "java", "bash", "sql")


class CodegenParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of ``codegen``."""

    description: str
    language: str = "python"
    model: str = "code_generation"
    max_tokens: int = 384
    nice: int = 0

    def validate(self) -> None:
        if self.language.lower() not in LANGUAGES:
            raise InvalidArgument(f"language must be one of {', '.join(LANGUAGES)}")
        if not self.description.strip():
            raise InvalidArgument("describe the code to write")


class CodegenResult(msgspec.Struct, kw_only=True):
    """The code, and whether it passed the syntax check (Python only)."""

    code: str
    language: str
    is_checked: bool
    is_valid: bool
    error: str | None = None
    attempts: int = 1


def request(params: CodegenParams, previous: str = "", error: str = "") -> list[dict[str, str]]:
    system = (
        f"You write {params.language} code. Reply with one {params.language} code block "
        "and nothing else."
    )
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": params.description},
    ]
    if error:
        messages += [
            {"role": "assistant", "content": f"```{params.language}\n{previous}\n```"},
            {"role": "user", "content": f"That code has a syntax error: {error}. Fix it."},
        ]
    return messages


def syntax_error(code: str) -> str | None:
    """None if ``code`` parses as Python, else the error."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"{exc.msg} (line {exc.lineno})"
    return None


async def codegen(kernel: KernelHandle, params: CodegenParams) -> CodegenResult:
    """Write ``language`` code for ``description``; Python is syntax-checked (one retry)."""
    language = params.language.lower()
    sampling = {"temperature": 0.0, "max_tokens": params.max_tokens}
    code = strip_fences(
        await kernel.generate(messages=request(params), model=params.model, **sampling)
    )
    if language != "python":
        return CodegenResult(code=code, language=language, is_checked=False, is_valid=True)
    error = syntax_error(code)
    attempts = 1
    if error is not None:
        retry = request(params, code, error)
        code = strip_fences(await kernel.generate(messages=retry, model=params.model, **sampling))
        error, attempts = syntax_error(code), 2
    return CodegenResult(
        code=code,
        language=language,
        is_checked=True,
        is_valid=error is None,
        error=error,
        attempts=attempts,
    )


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("codegen", codegen, CodegenParams, CodegenResult)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register("code_generation", "default", "codegen", "code with the default model")


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(codegen_command)


@click.command("codegen")
@click.option("--lang", "language", default="python", show_default=True)
@click.option("--model", "-m", default="code_generation", show_default=True)
@click.argument("description")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_obj
def codegen_command(shell: Any, as_json: bool, language: str, model: str, description: str) -> None:
    """Write code for DESCRIPTION (`-` reads stdin); prints the code only."""
    from llmos.cli.plugin_commands import call_and_print, read_text

    args = {"description": read_text(description), "language": language, "model": model}
    call_and_print(shell, "codegen", args, "code", as_json)
