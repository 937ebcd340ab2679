"""Load an HF model folder: ``config.json``, ``*.safetensors`` (one file or shards), tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from llmos.drivers.config import ModelConfig
from llmos.drivers.loaders.checkpoint import Checkpoint
from llmos.drivers.loaders.validate import check_tensors
from llmos.drivers.tokenizer import Tokenizer
from llmos.syscalls.errors import BadModelFile

SHARD_INDEX = "model.safetensors.index.json"


def load_hf_folder(folder: Path, name: str | None = None) -> Checkpoint:
    """Load the model in ``folder``; anything missing or corrupt is :class:`BadModelFile`."""
    folder = Path(folder)
    raw_config = read_json_object(folder / "config.json")
    config = ModelConfig.from_hf(raw_config)
    tensors: dict[str, torch.Tensor] = {}
    for path in safetensors_files(folder):
        tensors.update(_load_safetensors(path))
    check_tensors(tensors, config, folder)
    tokenizer = load_hf_tokenizer(folder, extra_eos_ids=_config_eos_ids(folder, config))
    return Checkpoint(
        name=name or folder.name, source=folder, config=config, tensors=tensors, tokenizer=tokenizer
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path``, naming the file in any error."""
    if not path.is_file():
        raise BadModelFile(f"{path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadModelFile(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadModelFile(f"{path} is not a JSON object")
    return data


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files: those the shard index names, else every ``*.safetensors``."""
    index_path = folder / SHARD_INDEX
    if index_path.is_file():
        weight_map = read_json_object(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise BadModelFile(f"{index_path} has no weight_map")
        files = [folder / str(f) for f in dict.fromkeys(weight_map.values())]
        if missing := [f.name for f in files if not f.is_file()]:
            raise BadModelFile(f"{index_path} names missing shards: {', '.join(missing)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise BadModelFile(f"no *.safetensors weights in {folder}")
    return files


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    # load_file maps the file rather than reading it through Python.
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BadModelFile(f"{path} is not a valid safetensors file: {exc}") from exc


def load_hf_tokenizer(folder: Path, extra_eos_ids: list[int] | None = None) -> Tokenizer:
    """The tokenizer of an HF folder; needs ``tokenizer.json`` (the fast format)."""
    tokenizer_json = folder / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise BadModelFile(f"{tokenizer_json} is missing (llmos needs the fast tokenizer file)")
    template_file = folder / "chat_template.jinja"
    if not template_file.is_file():
        template_file = folder / "chat_template.json"
    return Tokenizer.from_files(
        tokenizer_json,
        folder / "tokenizer_config.json",
        template_file,
        extra_eos_ids=extra_eos_ids or [],
    )


def _config_eos_ids(folder: Path, config: ModelConfig) -> list[int]:
    """Stop ids from config.json plus generation_config.json (Llama 3 lists several there)."""
    ids = list(config.eos_token_id)
    generation = folder / "generation_config.json"
    if generation.is_file():
        eos = read_json_object(generation).get("eos_token_id")
        ids += [eos] if isinstance(eos, int) else [i for i in eos or [] if isinstance(i, int)]
    return list(dict.fromkeys(ids))
