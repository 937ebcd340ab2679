"""Tiny random models for tests: an HF folder, and GGUF files written from it.

    folder = make_tiny_hf_model(tmp_path / "hf", arch="llama")
    model = load_tiny_hf_model(folder)            # transformers model, float32, eval
    gguf_path = write_tiny_gguf(folder, tmp_path / "tiny.gguf", GGMLQuantizationType.Q8_0)

Everything is seeded, small (hidden 64, 2 layers, ~300-token vocabulary) and
built offline in well under a second.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import gguf
import numpy as np
import tokenizers
import torch
import transformers
from gguf import GGMLQuantizationType
from tokenizers import decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, how are you today?",
    "Paged attention keeps the KV cache in fixed-size blocks.",
    "An operating system schedules processes and pages their memory.",
    "Numbers like 12345 and 2024 appear in text, as do émojis 😀 and ünïcödé.",
    "def main():\n    print('hello')\n",
]
GGUF_BLOCK_PARTS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


@cache
def tiny_tokenizer_json() -> str:
    """A byte-level BPE trained on :data:`SENTENCES` (~300 tokens), as JSON text."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    return str(tok.to_str())


def tiny_hf_model(
    arch: str, vocab_size: int, tie: bool, **extra: object
) -> transformers.PreTrainedModel:
    """A seeded random tiny ``arch`` ("llama", "mistral", "qwen2") model, float32, in memory.

    ``extra`` overrides config fields (``rope_scaling``, ``sliding_window``...).
    """
    config_class = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
    }[arch]
    fields: dict[str, object] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=tie,
    )
    config = config_class(**(fields | extra))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():  # larger than the default init, so logits differ visibly
        for param in model.parameters():
            param.normal_(0, 0.08 if param.dim() > 1 else 0.1)
            if param.dim() == 1 and param.shape[0] == config.hidden_size:
                param.add_(1.0)  # norm weights near 1, like a trained model
    return model.float().eval()


def make_tiny_hf_model(
    path: Path, arch: str = "llama", tie: bool = False, max_shard_size: str | None = None
) -> Path:
    """Save a random tiny ``arch`` ("llama", "mistral", "qwen2") model with a ChatML
    tokenizer to ``path`` as safetensors (sharded if ``max_shard_size``, e.g. "40KB")."""
    tok = tokenizers.Tokenizer.from_str(tiny_tokenizer_json())
    model = tiny_hf_model(arch, tok.get_vocab_size(), tie, bos_token_id=1, eos_token_id=2)
    model.float().save_pretrained(path, max_shard_size=max_shard_size or "1GB")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)
    return Path(path)


def load_tiny_hf_model(folder: Path) -> transformers.PreTrainedModel:
    """The transformers model saved in ``folder``, float32, eager attention, eval mode."""
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def write_tiny_gguf(
    hf_folder: Path,
    path: Path,
    tensor_type: GGMLQuantizationType = GGMLQuantizationType.F32,
    extra_tensors: dict[str, np.ndarray] | None = None,
    tokenizer_pre: str = "gpt2",
) -> Path:
    """Write the model in ``hf_folder`` as a GGUF, the way llama.cpp's converter would.

    2-D weights are stored as ``tensor_type`` (F32, F16, Q8_0, Q4_0...), norms and
    biases as F32; llama/mistral q/k rows get llama.cpp's RoPE permutation.
    ``extra_tensors`` (GGUF name -> float32 array) are written as F32 too;
    ``tokenizer_pre`` is the ``tokenizer.ggml.pre`` name to record.
    """
    model = load_tiny_hf_model(hf_folder)
    config = model.config
    arch = config.model_type
    writer = gguf.GGUFWriter(path, arch)
    _write_hparams(writer, config)
    _write_tokenizer(writer, hf_folder, tokenizer_pre)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        array = tensor.detach().float().numpy()
        if arch in ("llama", "mistral"):
            array = _permute_qk(name, array, config)
        _add_tensor(writer, _gguf_name(name), array, tensor_type)
    for name, array in (extra_tensors or {}).items():
        _add_tensor(writer, name, array, GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def _write_hparams(writer: gguf.GGUFWriter, config: transformers.PretrainedConfig) -> None:
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        writer.add_sliding_window(config.sliding_window)


def _write_tokenizer(writer: gguf.GGUFWriter, hf_folder: Path, pre: str) -> None:
    spec = json.loads((Path(hf_folder) / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIAL_TOKENS else 1 for t in tokens])
    writer.add_token_merges([" ".join(pair) for pair in spec["model"]["merges"]])
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)


def _permute_qk(name: str, array: np.ndarray, config: transformers.PretrainedConfig) -> np.ndarray:
    """llama.cpp's converter: per head, rotate-half rows -> interleaved pairs."""
    if "q_proj" in name:
        heads = config.num_attention_heads
    elif "k_proj" in name:
        heads = config.num_key_value_heads
    else:
        return array
    rows = array.shape[0]
    # [heads, 2, head_dim/2, ...] -> [heads, head_dim/2, 2, ...]
    split = array.reshape(heads, 2, rows // heads // 2, *array.shape[1:])
    return split.swapaxes(1, 2).reshape(array.shape)


def _gguf_name(hf_name: str) -> str:
    fixed = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    if hf_name in fixed:
        return fixed[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    part, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{GGUF_BLOCK_PARTS[part]}.{kind}"


def _add_tensor(
    writer: gguf.GGUFWriter, name: str, array: np.ndarray, tensor_type: GGMLQuantizationType
) -> None:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim == 1 or tensor_type == GGMLQuantizationType.F32:
        writer.add_tensor(name, array)
    elif tensor_type == GGMLQuantizationType.F16:
        writer.add_tensor(name, array.astype(np.float16))
    else:
        writer.add_tensor(name, gguf.quants.quantize(array, tensor_type), raw_dtype=tensor_type)
