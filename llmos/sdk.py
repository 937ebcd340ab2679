"""The SDK: a model held by the kernel, used like a local object.

    import llmos

    with llmos.load_model("default") as model:
        print(model.generate("The capital of France is", max_tokens=8, temperature=0))
        for chunk in model.stream("Once upon a time"):
            print(chunk, end="")
        print(model.chat("Say hello in French."))

    llmos.load_model("machine_translation").translate(
        "Hello, world!", source_lang="en", target_lang="zh")

Sampling keywords are :class:`~llmos.syscalls.sampling.SamplingParams` fields.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from llmos.syscalls.calls import MessageLike
from llmos.syscalls.client import Client
from llmos.syscalls.replies import ModelInfo
from llmos.syscalls.requests import Message


def load_model(
    name: str = "default",
    *,
    socket_path: str | os.PathLike[str] | None = None,
    keep_alive: float | None = None,
) -> Model:
    """Connect to the kernel, have it load ``name`` and return a handle on the model."""
    client = Client(socket_path)
    try:
        info = client.load(name, keep_alive=keep_alive)
    except BaseException:
        client.close()
        raise
    return Model(client, info)


class Model:
    """A model resident in the kernel, reached through its own connection.

    Each call runs as a process of the kernel, on the model's resolved
    ``name`` (a preset such as ``default`` resolves to the model behind it).
    """

    def __init__(self, client: Client, info: ModelInfo) -> None:
        self.client = client
        self.info = info

    @property
    def name(self) -> str:
        """The model's name as the kernel knows it."""
        return self.info.name

    def generate(self, prompt: str, **sampling: Any) -> str:
        """Complete ``prompt`` and return the text."""
        return self.client.generate(prompt, model=self.name, **sampling)

    def stream(self, prompt: str, **sampling: Any) -> Iterator[str]:
        """Complete ``prompt``, yielding the text as it is generated."""
        with self.client.run(prompt, model=self.name, **sampling) as process:
            yield from process.text_chunks()
        if process.exit_status is not None:
            self.client.wait(process.pid)  # reap it, as generate() does

    def chat(self, messages: str | Sequence[MessageLike], **sampling: Any) -> str:
        """The assistant's reply to a conversation (a plain string is one user message)."""
        if isinstance(messages, str):
            messages = [Message(role="user", content=messages)]
        return self.client.generate(model=self.name, messages=messages, **sampling)

    @property
    def target(self) -> str:
        """What plugin syscalls are told to use: the preset, else the model."""
        return self.info.preset or self.name

    def call(self, syscall: str, **args: Any) -> dict[str, Any]:
        """Call any plugin syscall on this model; its result as a dict."""
        return self.client.call(syscall, model=self.target, **args)

    def translate(
        self, text: str, *, source_lang: str = "en", target_lang: str, **args: Any
    ) -> str:
        """``text`` translated (ISO 639-1 codes); see the ``translate`` syscall."""
        args.update(text=text, source_lang=source_lang, target_lang=target_lang)
        return str(self.call("translate", **args)["text"])

    def summarize(self, text: str, max_words: int = 100, **args: Any) -> str:
        """A summary of at most ``max_words`` words; see the ``summarize`` syscall."""
        return str(self.call("summarize", text=text, max_words=max_words, **args)["summary"])

    def codegen(self, description: str, language: str = "python", **args: Any) -> str:
        """Code for ``description`` (code only); see the ``codegen`` syscall for the check."""
        result = self.call("codegen", description=description, language=language, **args)
        return str(result["code"])

    def compose(self, description: str, **args: Any) -> dict[str, Any]:
        """A tune: its ABC text and MIDI/WAV paths; see the ``compose`` syscall."""
        return self.call("compose", description=description, **args)

    def ask(self, question: str, context: str | None = None, **args: Any) -> str:
        """An answer to ``question``, from ``context`` if given; see the ``ask`` syscall."""
        return str(self.call("ask", question=question, context=context, **args)["answer"])

    def close(self) -> None:
        """Close the connection; the model stays loaded until its keep-alive runs out."""
        self.client.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
