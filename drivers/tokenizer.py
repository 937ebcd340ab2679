"""Tokenizer: text <-> token ids, special tokens and the chat template of one model.

It wraps a ``tokenizers.Tokenizer`` (the Rust "fast" tokenizer). HF folders give
one as ``tokenizer.json``; GGUF files describe one in metadata and
:mod:`llmos.drivers.loaders.gguf_tokenizer` builds it, then calls the constructor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tokenizers

from llmos.drivers.chat_template import CHATML_TEMPLATE, ChatTemplate
from llmos.syscalls.errors import BadModelFile, InvalidArgument

# Special tokens that end an assistant turn in common chat formats. A model that
# has one of them as a special token stops there, whatever its config calls "eos".
END_OF_TURN_TOKENS = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
)


class Tokenizer:
    """A model's tokenizer: encode, decode, end-of-sequence ids and chat template.

    ``add_bos_token`` says whether :meth:`encode` puts ``bos_token`` first (GGUF
    ``tokenizer.ggml.add_bos_token``, HF ``tokenizer_config.json``); a BOS the
    backend's own post-processor already added is never doubled. ``extra_eos_ids``
    are more stop ids from the model config (HF ``eos_token_id`` lists, GGUF
    ``eot``/``eom`` ids).
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        add_bos_token: bool = False,
        chat_template: str | None = None,
        extra_eos_ids: Sequence[int] = (),
    ) -> None:
        self._backend = backend
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos_token = add_bos_token
        self.chat_template = chat_template
        self._extra_eos_ids = [int(i) for i in extra_eos_ids]
        self._template = ChatTemplate(
            chat_template or CHATML_TEMPLATE, bos_token=bos_token or "", eos_token=eos_token or ""
        )

    @classmethod
    def from_files(
        cls,
        tokenizer_json: Path,
        tokenizer_config_json: Path | None,
        chat_template_file: Path | None = None,
        extra_eos_ids: Sequence[int] = (),
    ) -> Tokenizer:
        """Load the HF layout: ``tokenizer.json``, ``tokenizer_config.json`` and an
        optional ``chat_template.jinja`` / ``chat_template.json``."""
        try:
            backend = tokenizers.Tokenizer.from_file(str(tokenizer_json))
        except Exception as exc:  # the Rust side raises plain Exception
            raise BadModelFile(f"cannot read {tokenizer_json}: {exc}") from exc
        config = _read_json(tokenizer_config_json) if tokenizer_config_json else {}
        template = _template_from_file(chat_template_file) if chat_template_file else None
        return cls(
            backend,
            bos_token=_token_content(config.get("bos_token")),
            eos_token=_token_content(config.get("eos_token")),
            add_bos_token=bool(config.get("add_bos_token", False)),
            chat_template=template or _pick_template(config.get("chat_template")),
            extra_eos_ids=extra_eos_ids,
        )

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` for :meth:`from_files`."""
        folder.mkdir(parents=True, exist_ok=True)
        self._backend.save(str(folder / "tokenizer.json"))
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "add_bos_token": self.add_bos_token,
            "chat_template": self.chat_template,
        }
        text = json.dumps(config, indent=2, ensure_ascii=False)
        (folder / "tokenizer_config.json").write_text(text, encoding="utf-8")

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce, added tokens included."""
        return int(self._backend.get_vocab_size(with_added_tokens=True))

    @property
    def bos_token_id(self) -> int | None:
        return self.token_to_id(self.bos_token) if self.bos_token else None

    @property
    def eos_token_id(self) -> int | None:
        return self.token_to_id(self.eos_token) if self.eos_token else None

    @property
    def eos_token_ids(self) -> list[int]:
        """Every id that ends generation: eos, config extras, end-of-turn specials."""
        special = self.special_token_ids
        turn_ends = [special[t] for t in END_OF_TURN_TOKENS if t in special]
        eos = [] if self.eos_token_id is None else [self.eos_token_id]
        return list(dict.fromkeys([*eos, *self._extra_eos_ids, *turn_ends]))

    @property
    def special_token_ids(self) -> dict[str, int]:
        """Added tokens marked special, by content."""
        decoder = self._backend.get_added_tokens_decoder()
        return {token.content: int(i) for i, token in decoder.items() if token.special}

    def token_to_id(self, token: str) -> int | None:
        found = self._backend.token_to_id(token)
        return None if found is None else int(found)

    def id_to_token(self, token_id: int) -> str | None:
        found = self._backend.id_to_token(token_id)
        return None if found is None else str(found)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; special tokens written in it (``<|im_start|>``) stay whole."""
        if not isinstance(text, str):
            raise InvalidArgument("text to encode must be a string")
        try:
            encoding = self._backend.encode(text, add_special_tokens=add_special_tokens)
        except TypeError as exc:  # the Rust side refuses lone surrogates ("\ud800")
            raise InvalidArgument(f"text is not valid Unicode: {exc}") from exc
        ids = list(encoding.ids)
        bos = self.bos_token_id
        if add_special_tokens and self.add_bos_token and bos is not None and ids[:1] != [bos]:
            ids.insert(0, bos)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``. Ids past the vocabulary decode to nothing, as in
        ``tokenizers`` (a model's embedding may be padded beyond its tokenizer);
        negative ids are InvalidArgument."""
        checked = [int(i) for i in ids]
        if any(i < 0 for i in checked):
            raise InvalidArgument("token ids must not be negative")
        size = self.vocab_size
        known = [i for i in checked if i < size]
        return str(self._backend.decode(known, skip_special_tokens=skip_special_tokens))

    def apply_chat_template(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """Render a conversation with the model's template (ChatML if it has none)."""
        prompt: str = self._template.render(messages, add_generation_prompt=add_generation_prompt)
        return prompt


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BadModelFile(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BadModelFile(f"{path} is not a JSON object")
    return data


def _token_content(value: object) -> str | None:
    """A special token as HF writes it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _pick_template(value: object) -> str | None:
    """HF stores one template as a string, or several as ``[{name, template}]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        chosen = named.get("default")
        return chosen if isinstance(chosen, str) else None
    return None


def _template_from_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    if path.suffix == ".json":
        return _pick_template(_read_json(path).get("chat_template"))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadModelFile(f"cannot read {path}: {exc}") from exc
