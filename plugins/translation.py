"""``translate``: text from one language to another, sentence by sentence in parallel.

Long text is split into sentences; each is translated by its own process,
all running at once (the kernel batches them), then joined. Language codes
are ISO 639-1 and validated; an optional glossary pins terms. The default
model (SmolLM2-135M) is tiny: expect rough translations; a preset can name a
stronger model (``llmosctl load Qwen/Qwen2.5-0.5B-Instruct``).
"""

from __future__ import annotations

from typing import Any

import click
import msgspec

from llmos.plugins.api import KernelHandle
from llmos.plugins.hookspecs import hookimpl
from llmos.plugins.languages import LANGUAGES, language_name
from llmos.plugins.text import sentences
from llmos.syscalls.errors import InvalidArgument

MAX_SEGMENTS = 64


class TranslateParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Arguments of ``translate``."""

    text: str
    target_lang: str
    source_lang: str = "en"
    glossary: dict[str, str] | None = None
    model: str = "machine_translation"
    max_tokens: int = 256
    nice: int = 0

    def validate(self) -> None:
        for code in (self.source_lang, self.target_lang):
            if language_name(code) is None:
                known = ", ".join(sorted(LANGUAGES))
                raise InvalidArgument(f"unknown language code {code!r}; use one of {known}")
        if not self.text.strip():
            raise InvalidArgument("nothing to translate")


class TranslateResult(msgspec.Struct, kw_only=True):
    """The translation and how it was made."""

    text: str
    source_lang: str
    target_lang: str
    num_segments: int


def messages_for(segment: str, params: TranslateParams) -> list[dict[str, str]]:
    source = language_name(params.source_lang)
    target = language_name(params.target_lang)
    system = (
        f"You are a translator. Translate the user's {source} text into {target}. "
        f"Reply with the {target} translation only."
    )
    if params.glossary:
        terms = "; ".join(f"{k} -> {v}" for k, v in params.glossary.items())
        system += f" Always translate these terms as given: {terms}."
    return [{"role": "system", "content": system}, {"role": "user", "content": segment}]


async def translate(kernel: KernelHandle, params: TranslateParams) -> TranslateResult:
    """Translate ``text`` from ``source_lang`` to ``target_lang`` (ISO 639-1 codes).

    Sentences are translated in parallel processes and joined in order.
    """
    segments = sentences(params.text)
    if len(segments) > MAX_SEGMENTS:
        raise InvalidArgument(f"at most {MAX_SEGMENTS} sentences per call")
    sampling: dict[str, Any] = {"temperature": 0.0, "max_tokens": params.max_tokens}
    pids = [
        await kernel.spawn(messages=messages_for(s, params), model=params.model, **sampling)
        for s in segments
    ]
    texts = [(await kernel.wait(pid)).text.strip() for pid in pids]
    joiner = "" if params.target_lang.startswith(("zh", "ja", "th")) else " "
    return TranslateResult(
        text=joiner.join(texts),
        source_lang=params.source_lang,
        target_lang=params.target_lang,
        num_segments=len(segments),
    )


@hookimpl
def llmos_register_syscalls(register: Any) -> None:
    register("translate", translate, TranslateParams, TranslateResult)


@hookimpl
def llmos_register_models(register: Any) -> None:
    register(
        "machine_translation",
        "default",
        "translate",
        "translation with the default model",
        {"temperature": 0.0},
    )


@hookimpl
def llmos_cli(cli: Any) -> None:
    cli.add_command(translate_command)


@click.command("translate")
@click.option("--from", "source_lang", default="en", show_default=True, help="Source language.")
@click.option("--to", "target_lang", required=True, help="Target language (ISO 639-1).")
@click.option("--model", "-m", default="machine_translation", show_default=True)
@click.option("--glossary", multiple=True, metavar="TERM=TRANSLATION", help="Pin a term.")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_obj
def translate_command(
    shell: Any,
    as_json: bool,
    source_lang: str,
    target_lang: str,
    model: str,
    glossary: tuple[str, ...],
    text: str,
) -> None:
    """Translate TEXT (`-` reads stdin) from --from to --to."""
    from llmos.cli.plugin_commands import call_and_print, read_text

    terms = dict(item.split("=", 1) for item in glossary if "=" in item) or None
    args = {"text": read_text(text), "source_lang": source_lang, "target_lang": target_lang}
    call_and_print(shell, "translate", {**args, "model": model, "glossary": terms}, "text", as_json)
