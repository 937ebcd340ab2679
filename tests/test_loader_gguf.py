"""GGUF loader: dequantized weights against the float model, un-permuted q/k, bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
import transformers
from gguf import GGMLQuantizationType as Q
from tinymodels import load_tiny_hf_model, make_tiny_hf_model, write_tiny_gguf
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from llmos.drivers.loaders import cache
from llmos.drivers.loaders.cache import cache_folder, load_gguf_cached
from llmos.drivers.loaders.gguf import load_gguf, load_gguf_tokenizer
from llmos.drivers.loaders.gguf_config import llama3_scaling
from llmos.drivers.loaders.hf import load_hf_folder
from llmos.syscalls.errors import BadModelFile

ARCHS = [("llama", False), ("mistral", True), ("qwen2", False), ("qwen2", True)]
# Relative L2 error of the logits against the float32 model. F16 rounds weights
# at 2^-11; Q8_0 / Q4_0 round each 32-weight block to 1/127 / 1/8 of its largest
# value. These bounds are ~2-3x what the seeded tiny models show.
LOGIT_TOLERANCE = {Q.F32: 0.0, Q.F16: 5e-3, Q.Q8_0: 0.06, Q.Q4_0: 0.6}
# Largest error per weight, in units of the block's scale d (= amax/127 or amax/8):
# half a step for rounding (a whole step where Q4_0 clips at +7), plus the error
# of storing d itself in float16 (times the largest |q|).
BLOCK_ERROR_BOUND = {Q.Q8_0: 0.5 + 127 * 2**-11, Q.Q4_0: 1.0 + 8 * 2**-11}
BLOCK_LEVELS = {Q.Q8_0: 127.0, Q.Q4_0: 8.0}
PROMPT = torch.tensor([list(range(3, 45))])


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Path]:
    root = tmp_path_factory.mktemp("hf")
    return {(a, t): make_tiny_hf_model(root / f"{a}-{t}", a, tie=t) for a, t in ARCHS}


@pytest.fixture(scope="module")
def llama_gguf(
    hf_folders: dict[tuple[str, bool], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return write_tiny_gguf(hf_folders["llama", False], tmp_path_factory.mktemp("g") / "t.gguf")


def logits_with(folder: Path, tensors: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    model = load_tiny_hf_model(folder)
    if tensors is not None:
        model.load_state_dict(tensors, strict=not model.config.tie_word_embeddings)
    with torch.no_grad():
        return model(PROMPT).logits[0]


def stored_and_restored(tensor: torch.Tensor, tensor_type: Q) -> torch.Tensor:
    """What a loader must return for ``tensor`` written as ``tensor_type`` (norms and
    biases are always F32). Quantization blocks run along rows, so the q/k row
    permutation does not change what each row comes back as."""
    if tensor.dim() == 1 or tensor_type == Q.F32:
        return tensor
    if tensor_type == Q.F16:
        return tensor.half().float()
    restored = gguf.quants.dequantize(
        gguf.quants.quantize(tensor.numpy(), tensor_type), tensor_type
    )
    return torch.from_numpy(restored)


@pytest.mark.parametrize("tensor_type", [Q.F32, Q.F16, Q.Q8_0, Q.Q4_0], ids=lambda q: q.name)
@pytest.mark.parametrize(("arch", "tie"), ARCHS)
def test_gguf_weights_and_logits(
    hf_folders: dict[tuple[str, bool], Path], tmp_path: Path, arch: str, tie: bool, tensor_type: Q
) -> None:
    folder = hf_folders[arch, tie]
    checkpoint = load_gguf(write_tiny_gguf(folder, tmp_path / "m.gguf", tensor_type))
    hf = load_hf_folder(folder)
    assert checkpoint.config == hf.config
    assert checkpoint.tensors.keys() == hf.tensors.keys()
    for name, tensor in hf.tensors.items():  # exact: names, shapes, q/k un-permutation
        assert torch.equal(checkpoint.tensors[name], stored_and_restored(tensor, tensor_type)), name
    want, got = logits_with(folder), logits_with(folder, checkpoint.tensors)
    assert float((got - want).norm() / want.norm()) <= LOGIT_TOLERANCE[tensor_type]


@pytest.mark.parametrize("tensor_type", [Q.Q8_0, Q.Q4_0], ids=lambda q: q.name)
def test_dequantized_weights_within_block_bounds(
    hf_folders: dict[tuple[str, bool], Path], tmp_path: Path, tensor_type: Q
) -> None:
    folder = hf_folders["llama", False]
    checkpoint = load_gguf(write_tiny_gguf(folder, tmp_path / "m.gguf", tensor_type))
    for name, original in load_hf_folder(folder).tensors.items():
        if original.dim() == 1:
            assert torch.equal(checkpoint.tensors[name], original), name  # norms stay F32
            continue
        blocks = original.reshape(-1, 32)
        scale = blocks.abs().amax(dim=1, keepdim=True) / BLOCK_LEVELS[tensor_type]
        error = (checkpoint.tensors[name].reshape(-1, 32) - blocks).abs()
        assert bool((error <= scale * BLOCK_ERROR_BOUND[tensor_type] + 1e-7).all()), name
        assert bool((error > 0).any()), name  # really quantized


def test_qk_rows_are_stored_permuted_and_loaded_unpermuted(
    hf_folders: dict[tuple[str, bool], Path], llama_gguf: Path
) -> None:
    reader = gguf.GGUFReader(llama_gguf)
    stored = {t.name: np.array(t.data) for t in reader.tensors}
    hf = load_hf_folder(hf_folders["llama", False]).tensors
    ours = load_gguf(llama_gguf).tensors
    for gguf_name, hf_name in [("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")]:
        original = hf[f"model.layers.0.self_attn.{hf_name}.weight"]
        raw = torch.from_numpy(stored[f"blk.0.{gguf_name}.weight"])
        assert torch.equal(raw, original) is (gguf_name == "attn_v")  # only q and k permuted
        assert torch.equal(ours[f"model.layers.0.self_attn.{hf_name}.weight"], original)


def test_tied_embeddings_follow_output_tensor(
    hf_folders: dict[tuple[str, bool], Path], tmp_path: Path
) -> None:
    tied = load_gguf(write_tiny_gguf(hf_folders["qwen2", True], tmp_path / "tied.gguf"))
    untied = load_gguf(write_tiny_gguf(hf_folders["qwen2", False], tmp_path / "untied.gguf"))
    assert tied.config.tie_word_embeddings and "lm_head.weight" not in tied.tensors
    assert not untied.config.tie_word_embeddings and "lm_head.weight" in untied.tensors
    assert tied.config.attention_bias and "model.layers.1.self_attn.v_proj.bias" in tied.tensors


def test_checkpoint_metadata(llama_gguf: Path) -> None:
    checkpoint = load_gguf(llama_gguf, name="tiny")
    assert (checkpoint.name, checkpoint.source) == ("tiny", llama_gguf)
    assert all(t.dtype == torch.float32 for t in checkpoint.tensors.values())
    tokenizer = checkpoint.tokenizer
    assert tokenizer.encode("<|im_start|>user\nhi")[0] == tokenizer.bos_token_id == 1
    assert tokenizer.eos_token_ids[0] == 2 and checkpoint.config.eos_token_id == [2]
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}]).startswith(
        "<|im_start|>user\nhi<|im_end|>"
    )


def llama3_divisors(theta: float, head_dim: int, params: dict[str, float]) -> np.ndarray:
    """What llama.cpp stores in rope_freqs.weight: default / llama3 inverse frequencies."""
    config = transformers.LlamaConfig(
        hidden_size=head_dim * 4,
        num_attention_heads=4,
        max_position_embeddings=131072,
        rope_parameters={"rope_type": "llama3", "rope_theta": theta, **params},
    )
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    default = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    return (default / scaled.double()).numpy().astype(np.float32)


def test_llama3_rope_scaling_recovered_from_rope_freqs(
    hf_folders: dict[tuple[str, bool], Path], tmp_path: Path
) -> None:
    params = {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    assert llama3_scaling(llama3_divisors(500000.0, 64, params), 500000.0, 64) == {
        "rope_type": "llama3",
        **params,
    }
    with pytest.raises(BadModelFile, match="rope_freqs"):
        llama3_scaling(llama3_divisors(500000.0, 64, {**params, "high_freq_factor": 2.0}), 5e5, 64)
    divisors = llama3_divisors(10000.0, 16, {**params, "factor": 32.0})
    path = write_tiny_gguf(
        hf_folders["llama", False],
        tmp_path / "l3.gguf",
        extra_tensors={"rope_freqs.weight": divisors},
    )
    config = load_gguf(path).config
    assert config.rope_scaling == {
        "rope_theta": 10000.0,
        "rope_type": "llama3",
        **params,
        "factor": 32.0,
    }


def test_unknown_tensor_is_rejected(
    hf_folders: dict[tuple[str, bool], Path], tmp_path: Path
) -> None:
    extra = {"blk.0.attn_q_norm.weight": np.ones(16, np.float32)}
    path = write_tiny_gguf(hf_folders["llama", False], tmp_path / "x.gguf", extra_tensors=extra)
    with pytest.raises(BadModelFile, match="attn_q_norm"):
        load_gguf(path)


def write_bare_gguf(path: Path, arch: str, strings: dict[str, str]) -> Path:
    """A GGUF with one tensor and a few string fields, for metadata checks."""
    writer = gguf.GGUFWriter(path, arch)
    for key, value in strings.items():
        writer.add_string(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_unsupported_architecture_or_malformed_metadata(tmp_path: Path) -> None:
    with pytest.raises(BadModelFile, match="phi2"):
        load_gguf(write_bare_gguf(tmp_path / "phi.gguf", "phi2", {}))
    with pytest.raises(BadModelFile, match="llama.embedding_length"):
        load_gguf(write_bare_gguf(tmp_path / "few.gguf", "llama", {"llama.block_count": "1"}))
    counts = {
        k: "many"
        for k in ["block_count", "embedding_length", "feed_forward_length", "attention.head_count"]
    }
    path = write_bare_gguf(
        tmp_path / "bad.gguf", "llama", {f"llama.{k}": v for k, v in counts.items()}
    )
    with pytest.raises(BadModelFile, match="malformed"):
        load_gguf(path)
    path = write_bare_gguf(tmp_path / "tok.gguf", "llama", {"tokenizer.ggml.model": "bert"})
    with pytest.raises(BadModelFile, match="bert"):
        load_gguf_tokenizer(path)


@pytest.mark.parametrize("keep", [0, 3, 24, 200, 2000, 0.5, 0.999])
def test_truncated_file(llama_gguf: Path, tmp_path: Path, keep: float) -> None:
    data = llama_gguf.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else int(keep)
    (tmp_path / "cut.gguf").write_bytes(data[:cut])
    with pytest.raises(BadModelFile, match=r"cut\.gguf"):
        load_gguf(tmp_path / "cut.gguf")


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "junk.gguf").write_bytes(bytes(range(256)) * 100)
    with pytest.raises(BadModelFile, match=r"junk\.gguf"):
        load_gguf(tmp_path / "junk.gguf")
    (tmp_path / "magic.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 100)
    with pytest.raises(BadModelFile, match=r"magic\.gguf"):
        load_gguf(tmp_path / "magic.gguf")
    with pytest.raises(BadModelFile, match="does not exist"):
        load_gguf(tmp_path / "absent.gguf")


# --- the conversion cache ----------------------------------------------------------------


def refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the cache should have answered without this")


def test_second_load_comes_from_the_cache(
    llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_gguf_cached(llama_gguf, tmp_path, "tiny")
    folder = cache_folder(llama_gguf, tmp_path)
    files = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"}
    assert files | {"source.json"} == {p.name for p in folder.iterdir()}
    monkeypatch.setattr(cache, "load_gguf", refuse)  # no GGUF reading...
    monkeypatch.setattr(cache, "_hash_file", refuse)  # ...and no re-hashing
    second = load_gguf_cached(llama_gguf, tmp_path, "tiny")
    assert (second.name, second.source, second.config) == ("tiny", llama_gguf, first.config)
    assert second.tensors.keys() == first.tensors.keys()
    for name, tensor in first.tensors.items():
        assert torch.equal(second.tensors[name], tensor), name
    text = "<|im_start|>user\nhéllo 😀<|im_end|>"
    assert second.tokenizer.encode(text) == first.tokenizer.encode(text)
    assert second.tokenizer.eos_token_ids == first.tokenizer.eos_token_ids
    assert second.tokenizer.chat_template == first.tokenizer.chat_template


def test_cache_is_keyed_by_content(
    hf_folders: dict[tuple[str, bool], Path], llama_gguf: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(llama_gguf.read_bytes())
    assert cache_folder(copy, tmp_path) == cache_folder(llama_gguf, tmp_path)
    write_tiny_gguf(hf_folders["llama", False], copy, Q.F16)  # same path, new content
    assert cache_folder(copy, tmp_path) != cache_folder(llama_gguf, tmp_path)


def test_failed_cache_write_leaves_nothing_behind(
    llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "save_file", disk_full)
    checkpoint = load_gguf_cached(llama_gguf, tmp_path)
    assert "model.embed_tokens.weight" in checkpoint.tensors
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["index.json"]


@pytest.mark.parametrize("damage", ["truncate_weights", "old_version"])
def test_damaged_or_stale_cache_is_rebuilt(
    llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    first = load_gguf_cached(llama_gguf, tmp_path)
    folder = cache_folder(llama_gguf, tmp_path)
    if damage == "truncate_weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (folder / "source.json").write_text(json.dumps({"cache_version": 0}))
    conversions = []
    monkeypatch.setattr(cache, "load_gguf", lambda *a: conversions.append(a) or load_gguf(*a))
    again = load_gguf_cached(llama_gguf, tmp_path)
    assert len(conversions) == 1
    assert torch.equal(again.tensors["lm_head.weight"], first.tensors["lm_head.weight"])
    monkeypatch.setattr(cache, "load_gguf", refuse)
    load_gguf_cached(llama_gguf, tmp_path)  # rebuilt, so served from the cache again


def test_concurrent_conversion_keeps_the_first_copy(
    llama_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = cache_folder(llama_gguf, tmp_path)
    inodes = []

    def convert_while_another_process_finishes(*args: Any) -> Any:
        checkpoint = load_gguf(*args)
        monkeypatch.setattr(cache, "load_gguf", load_gguf)
        load_gguf_cached(llama_gguf, tmp_path)  # the other process, done first
        inodes.append((folder / "model.safetensors").stat().st_ino)
        return checkpoint

    monkeypatch.setattr(cache, "load_gguf", convert_while_another_process_finishes)
    load_gguf_cached(llama_gguf, tmp_path)
    assert (folder / "model.safetensors").stat().st_ino == inodes[0]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [folder.name, "index.json"]
