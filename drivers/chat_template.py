"""Chat templates: turn a list of messages into a prompt with the model's own Jinja template.

Templates come from model files, so they are untrusted code: they run in Jinja's
immutable sandbox, with the same globals transformers offers them
(``raise_exception``, ``strftime_now``, a ``tojson`` that keeps non-ASCII text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmos.syscalls.errors import BadModelFile, InvalidArgument

# Used when a model ships no template: plain ChatML, the most common layout.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateRaised(Exception):
    """A template called ``raise_exception`` (it rejects the conversation)."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    # Jinja's own tojson HTML-escapes '<' and '&', which would corrupt prompts.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def validate_messages(messages: object) -> list[dict[str, str]]:
    """Check that ``messages`` is a list of ``{role, content}`` dicts of strings."""
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        raise InvalidArgument("messages must be a list of {role, content} objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= message.keys():
            raise InvalidArgument(f"message {index} must be an object with role and content")
        for key, value in message.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgument(f"message {index}: field {key!r} must be a string")
    return [dict(message) for message in messages]


class ChatTemplate:
    """A compiled chat template plus the special tokens it may refer to."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        self.source = source
        self._bos_token = bos_token
        self._eos_token = eos_token
        self._compiled: jinja2.Template | None = None

    def _template(self) -> jinja2.Template:
        # Compiled on first use so a broken template only fails chat requests.
        if self._compiled is None:
            try:
                self._compiled = _environment().from_string(self.source)
            except jinja2.TemplateError as exc:
                raise BadModelFile(f"the model's chat template does not compile: {exc}") from exc
        return self._compiled

    def render(self, messages: object, add_generation_prompt: bool = True) -> str:
        """Render ``messages``; a conversation the template rejects is InvalidArgument."""
        checked = validate_messages(messages)
        template = self._template()
        try:
            return template.render(
                messages=checked,
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos_token,
                eos_token=self._eos_token,
                tools=None,
                documents=None,
            )
        except TemplateRaised as exc:
            raise InvalidArgument(f"chat template rejected the conversation: {exc}") from exc
        except (jinja2.TemplateError, TypeError, ValueError, LookupError, AttributeError) as exc:
            # A template can trip over unusual (but well-formed) messages; that is the
            # caller's request failing, not the server.
            raise InvalidArgument(f"chat template failed on these messages: {exc}") from exc
