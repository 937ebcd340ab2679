"""HF folder loader: single and sharded safetensors, configs, and corrupt folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tinymodels import load_tiny_hf_model, make_tiny_hf_model

from llmos.drivers.config import ModelConfig
from llmos.drivers.loaders.hf import SHARD_INDEX, load_hf_folder
from llmos.syscalls.errors import BadModelFile


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_model(tmp_path_factory.mktemp("llama"), "llama")


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "model"))


def assert_matches_transformers(folder: Path) -> None:
    checkpoint = load_hf_folder(folder)
    reference = load_tiny_hf_model(folder)
    want = reference.state_dict()
    raw_config = json.loads((folder / "config.json").read_text())
    assert checkpoint.config == ModelConfig.from_hf(raw_config)
    if checkpoint.config.tie_word_embeddings:
        want.pop("lm_head.weight")
    assert checkpoint.tensors.keys() == want.keys()
    for name, tensor in want.items():
        assert torch.equal(checkpoint.tensors[name], tensor), name
    assert checkpoint.source == folder and checkpoint.name == folder.name


@pytest.mark.parametrize(("arch", "tie"), [("llama", False), ("mistral", True), ("qwen2", True)])
def test_loads_single_file(tmp_path: Path, arch: str, tie: bool) -> None:
    folder = make_tiny_hf_model(tmp_path / arch, arch, tie=tie)
    assert_matches_transformers(folder)
    config = load_hf_folder(folder).config
    assert config.model_type == arch and config.tie_word_embeddings is tie
    assert config.attention_bias is (arch == "qwen2")


def test_loads_sharded(tmp_path: Path) -> None:
    folder = make_tiny_hf_model(tmp_path / "sharded", "llama", max_shard_size="40KB")
    assert (folder / SHARD_INDEX).is_file()
    assert len(list(folder.glob("*.safetensors"))) > 2
    assert_matches_transformers(folder)


def test_tokenizer_and_generation_config_eos(llama_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(llama_folder, tmp_path)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 5]}))
    tokenizer = load_hf_folder(folder).tokenizer
    assert tokenizer.eos_token_ids == [2, 5, 0]
    assert tokenizer.encode("<|im_start|>hi")[0] == 1


def test_missing_config(llama_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(llama_folder, tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(BadModelFile, match=r"config\.json"):
        load_hf_folder(folder)


def test_config_of_unsupported_architecture(llama_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(llama_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(BadModelFile, match="gpt2"):
        load_hf_folder(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(BadModelFile, match=r"config\.json"):
        load_hf_folder(folder)


def test_missing_weights(llama_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(llama_folder, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(BadModelFile, match="safetensors"):
        load_hf_folder(folder)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "cut_header"])
def test_corrupt_safetensors(llama_folder: Path, tmp_path: Path, damage: str) -> None:
    folder = copy_of(llama_folder, tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "garbage": bytes(range(256)) * 64,
        "empty": b"",
        "cut_header": data[:20],
    }[damage]
    weights.write_bytes(damaged)
    with pytest.raises(BadModelFile, match=r"model\.safetensors"):
        load_hf_folder(folder)


def test_missing_shard(tmp_path: Path) -> None:
    folder = make_tiny_hf_model(tmp_path / "sharded", "llama", max_shard_size="40KB")
    shard = sorted(folder.glob("*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(BadModelFile, match=shard.name):
        load_hf_folder(folder)


def test_missing_or_misshapen_tensor(llama_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(llama_folder, tmp_path)
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, weights)
    with pytest.raises(BadModelFile, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_hf_folder(folder)
    tensors["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, weights)
    with pytest.raises(BadModelFile, match="shape"):
        load_hf_folder(folder)
