"""``ask``: answer a question, from a given context when there is one.

With a context the model is told to answer from it only; without, it answers
from what it knows. The default model is tiny (135M parameters): it knows
little and gets facts wrong; give it a context.
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl
from llmos.syscalls.errors import InvalidArgument

MAX_CONTEXT_CHARS = 12000


class AskParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of ``ask``."""

    question: str
    context: str | None = None
    model: str = "question_answering"
    max_tokens: int = 256
    nice: int = 0

    def validate(self) -> None:
        if not self.question.strip():
            raise InvalidArgument("ask a question")
        if self.context is not None and len(self.context) > MAX_CONTEXT_CHARS:
            raise InvalidArgument(f"the context is longer than {MAX_CONTEXT_CHARS} characters")


class AskResult(msgspec.Struct, kw_only=True):
    """The answer."""

    answer: str
    used_context: bool


def request(params: AskParams) -> list[dict[str, str]]:
    if params.context:
        system = "Answer the question from the context below only. Be brief."
        user = f"Context:\n{params.context}\n\nQuestion: {params.question}"
    else:
        system, user = "Answer the question briefly and accurately.", params.question
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def ask(kernel: KernelHandle, params: AskParams) -> AskResult:
    """Answer ``question``, from ``context`` if given."""
    sampling = {"temperature": 0.0, "max_tokens": params.max_tokens}
    answer = await kernel.generate(messages=request(params), model=params.model, **sampling)
    return AskResult(answer=answer.strip(), used_context=bool(params.context))


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("ask", ask, AskParams, AskResult)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register("question_answering", "default", "ask", "questions with the default model")


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(ask_command)


@click.command("ask")
@click.option("--context", "context_file", metavar="FILE", help="Answer from this file.")
@click.option("--model", "-m", default="question_answering", show_default=True)
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_obj
def ask_command(
    shell: Any, as_json: bool, context_file: str | None, model: str, question: str
) -> None:
    """Answer QUESTION, from the text of --context FILE if given."""
    from llmos.cli.plugin_commands import call_and_print, read_file

    context = read_file(context_file) if context_file else None
    args = {"question": question, "context": context, "model": model}
    call_and_print(shell, "ask", args, "answer", as_json)
