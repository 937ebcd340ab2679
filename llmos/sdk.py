"""The SDK: a model held by the kernel, used like a local object.

    import llmos

    with llmos.load_model("default") as model:
        print(model.generate("The capital of France is", max_tokens=8, temperature=0))
        for chunk in model.stream("Once upon a time"):
            print(chunk, end="")
        print(model.chat("Say hello in French."))

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

    def close(self) -> None:
        """Close the connection; the model stays loaded until its keep-alive runs out."""
        self.client.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
