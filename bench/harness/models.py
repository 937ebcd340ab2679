"""Which model a benchmark loads: the default one from the model cache, or the tiny
random test model (``--tiny``) built into a scratch folder."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2"


def use_test_helpers() -> None:
    """Put tests/ on ``sys.path``: the tiny random model and the simulator live there."""
    sys.path.insert(0, str(REPO / "tests"))


def default_model_folder(data_dir: Path | None) -> Path:
    """The default model's HF folder in the cache (converted from its GGUF the first time)."""
    from llmos.drivers.loaders.cache import cache_folder
    from llmos.drivers.loaders.registry import load_checkpoint, resolve

    load_checkpoint(MODEL, data_dir=data_dir)  # converts the GGUF once; cached after
    return cache_folder(resolve(MODEL), data_dir)


def prepare_model(folder: Path, *, is_tiny: bool, data_dir: Path | None) -> tuple[str, Path]:
    """The model name to load and its HF folder (tokenizer.json, config.json)."""
    if is_tiny:
        use_test_helpers()
        from tinymodels import make_tiny_hf_model

        hf_folder = make_tiny_hf_model(folder / "tiny", "llama")
        return str(hf_folder), hf_folder
    return MODEL, default_model_folder(data_dir)
