"""``summarize``: a summary of at most ``max_words`` words, map-reduce over long documents.

A document that fits one prompt is summarised directly. A longer one is cut
into chunks of whole sentences; every chunk is summarised by its own process
(all in one batch), and the chunk summaries are summarised again. Every map
prompt starts with the same instruction, so its KV pages come from the
prefix cache after the first: the instruction is computed once. The default
model is tiny (135M parameters): summaries are rough.
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl
from llmos.plugins.text import chunks, limit_words
from llmos.syscalls.errors import InvalidArgument

CHUNK_CHARS = 2000
MAX_CHUNKS = 64
INSTRUCTION = (
    "You are a careful editor. Summarize the user's text in plain prose, keeping the key "
    "facts, names and numbers. Reply with the summary only."
)


class SummarizeParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of ``summarize``."""

    text: str
    max_words: int = 100
    model: str = "summarization"
    nice: int = 0

    def validate(self) -> None:
        if not self.text.strip():
            raise InvalidArgument("nothing to summarize")
        if not 5 <= self.max_words <= 2000:
            raise InvalidArgument("max_words must be in [5, 2000]")


class SummarizeResult(msgspec.Struct, kw_only=True):
    """The summary and how it was made."""

    summary: str
    num_chunks: int
    num_words: int


def request(text: str, max_words: int) -> list[dict[str, str]]:
    user = f"Summarize in at most {max_words} words:\n\n{text}"
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": user}]


async def summarize_many(
    kernel: KernelHandle, texts: list[str], params: SummarizeParams
) -> list[str]:
    tokens = max(32, params.max_words * 2)
    sampling = {"temperature": 0.0, "max_tokens": tokens, "repetition_penalty": 1.1}
    pids = [
        await kernel.spawn(messages=request(t, params.max_words), model=params.model, **sampling)
        for t in texts
    ]
    return [(await kernel.wait(pid)).text.strip() for pid in pids]


async def summarize(kernel: KernelHandle, params: SummarizeParams) -> SummarizeResult:
    """Summarize ``text`` in at most ``max_words`` words (map-reduce when it is long)."""
    parts = chunks(params.text, CHUNK_CHARS)
    if len(parts) > MAX_CHUNKS:
        raise InvalidArgument(f"the text is too long: at most {MAX_CHUNKS * CHUNK_CHARS} chars")
    partial = await summarize_many(kernel, parts, params)
    if len(partial) > 1:
        partial = await summarize_many(kernel, ["\n".join(partial)], params)
    summary = limit_words(partial[0], params.max_words)
    return SummarizeResult(summary=summary, num_chunks=len(parts), num_words=len(summary.split()))


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("summarize", summarize, SummarizeParams, SummarizeResult)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register("summarization", "default", "summarize", "summaries with the default model")


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(summarize_command)


@click.command("summarize")
@click.option("--max-words", type=click.IntRange(5, 2000), default=100, show_default=True)
@click.option("--model", "-m", default="summarization", show_default=True)
@click.argument("source", metavar="FILE|-")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_obj
def summarize_command(shell: Any, as_json: bool, max_words: int, model: str, source: str) -> None:
    """Summarize FILE (or stdin with `-`) in at most --max-words words."""
    from llmos.cli.plugin_commands import call_and_print, read_file

    args = {"text": read_file(source), "max_words": max_words, "model": model}
    call_and_print(shell, "summarize", args, "summary", as_json)
