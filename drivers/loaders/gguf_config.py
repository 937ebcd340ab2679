"""GGUF metadata -> an HF-style ``config.json`` dict, for the architectures we run.

llama.cpp names hyperparameters ``{arch}.block_count``,
``{arch}.attention.head_count`` and so on; this maps them back to HF's names so
:meth:`ModelConfig.from_hf` reads GGUF and HF models the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from llmos.syscalls.errors import BadModelFile

# GGUF ``general.architecture`` -> HF ``model_type``.
GGUF_ARCHITECTURES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2"}

# llama.cpp stores q/k rows of these in an interleaved-RoPE order (see gguf.py).
PERMUTED_QK_ARCHITECTURES = frozenset({"llama", "mistral"})

_REQUIRED = {
    "hidden_size": "embedding_length",
    "intermediate_size": "feed_forward_length",
    "num_hidden_layers": "block_count",
    "num_attention_heads": "attention.head_count",
}


def gguf_architecture(metadata: Mapping[str, Any]) -> str:
    """``general.architecture``, checked against the ones we support."""
    arch = metadata.get("general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        supported = ", ".join(GGUF_ARCHITECTURES)
        raise BadModelFile(f"unsupported GGUF architecture {arch!r}; supported: {supported}")
    return str(arch)


def hf_config_from_gguf(
    metadata: Mapping[str, Any],
    *,
    vocab_size: int,
    has_output: bool,
    has_qkv_bias: bool,
    rope_factors: np.ndarray | None = None,
) -> dict[str, Any]:
    """Build the HF config dict. ``vocab_size`` comes from the embedding tensor,
    ``has_output`` (an ``output.weight`` tensor) decides tied embeddings, and
    ``rope_factors`` is the ``rope_freqs.weight`` tensor Llama 3.1+ files carry."""
    arch = gguf_architecture(metadata)

    def get(key: str, default: Any = None) -> Any:
        return metadata.get(f"{arch}.{key}", default)

    missing = [f"{arch}.{key}" for key in _REQUIRED.values() if get(key) is None]
    if missing:
        raise BadModelFile(f"GGUF metadata lacks {', '.join(missing)}")
    config: dict[str, Any] = {hf: int(get(key)) for hf, key in _REQUIRED.items()}
    num_heads = config["num_attention_heads"]
    head_dim = int(get("attention.key_length") or config["hidden_size"] // num_heads)
    rotary_dims = get("rope.dimension_count")
    if rotary_dims is not None and int(rotary_dims) != head_dim:
        raise BadModelFile(f"partial rotary embeddings ({rotary_dims} of {head_dim}) unsupported")
    config.update(
        model_type=GGUF_ARCHITECTURES[arch],
        vocab_size=vocab_size,
        num_key_value_heads=_uniform(get("attention.head_count_kv", num_heads), "head_count_kv"),
        head_dim=head_dim,
        max_position_embeddings=int(get("context_length", 2048)),
        rms_norm_eps=_f32(get("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_parameters=_rope_parameters(get, head_dim, rope_factors),
        tie_word_embeddings=not has_output,
        attention_bias=has_qkv_bias,
        sliding_window=get("attention.sliding_window"),
        use_sliding_window=get("attention.sliding_window") is not None,
        bos_token_id=metadata.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=gguf_eos_ids(metadata),
    )
    return config


def gguf_eos_ids(metadata: Mapping[str, Any]) -> list[int]:
    """Every stop id the file declares: eos, end-of-turn (eot) and end-of-message (eom)."""
    keys = ("eos_token_id", "eot_token_id", "eom_token_id")
    ids = [metadata.get(f"tokenizer.ggml.{key}") for key in keys]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def _f32(value: Any) -> float:
    """GGUF floats are float32: 1e-5 reads back as 9.99999974e-06. Use the shortest
    decimal that is the same float32, i.e. what the model's author wrote."""
    return float(str(np.float32(value)))


def _uniform(value: Any, key: str) -> int:
    """Some files store a per-layer list; we only run models where it is constant."""
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise BadModelFile(f"per-layer {key} values {sorted(set(value))} are unsupported")
        value = value[0]
    return int(value)


def _rope_parameters(get: Any, head_dim: int, rope_factors: np.ndarray | None) -> dict[str, Any]:
    """transformers 5's ``rope_parameters``: theta plus the scaling, if any."""
    theta = _f32(get("rope.freq_base", 10000.0))
    if rope_factors is not None:
        return {"rope_theta": theta, **llama3_scaling(rope_factors, theta, head_dim)}
    kind = get("rope.scaling.type")
    factor = get("rope.scaling.factor") or get("rope.scale_linear")
    if kind is None and factor is not None:
        kind = "linear"  # older files only wrote rope.scale_linear
    if kind in (None, "none") or factor is None:
        return {"rope_theta": theta, "rope_type": "default"}
    params: dict[str, Any] = {"rope_theta": theta, "rope_type": str(kind), "factor": _f32(factor)}
    if original := get("rope.scaling.original_context_length"):
        params["original_max_position_embeddings"] = int(original)
    return params


# Llama 3.1-3.3 all use these; GGUF keeps only the resulting per-frequency factors.
_LLAMA3_DEFAULTS = {
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def llama3_scaling(rope_factors: np.ndarray, theta: float, head_dim: int) -> dict[str, Any]:
    """Recover Llama 3 rope scaling from ``rope_freqs.weight``.

    llama.cpp stores, per frequency, the divisor llama3 scaling applies. The
    largest one is ``factor``; the other parameters are not stored, so we take
    Llama 3's and check that they reproduce every stored divisor.
    """
    factors = np.asarray(rope_factors, dtype=np.float64).reshape(-1)
    # Factors are round numbers (8, 32); the check below catches a wrong guess.
    params: dict[str, Any] = {"rope_type": "llama3", "factor": float(f"{factors.max():.5g}")}
    params.update(_LLAMA3_DEFAULTS)
    expected = _llama3_divisors(params, theta, head_dim)
    if expected.shape != factors.shape or not np.allclose(expected, factors, rtol=1e-4):
        raise BadModelFile("rope_freqs.weight does not match Llama 3 rope scaling; unsupported")
    return params


def _llama3_divisors(params: Mapping[str, Any], theta: float, head_dim: int) -> np.ndarray:
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / inv_freq
    old_len = params["original_max_position_embeddings"]
    low, high, factor = params["low_freq_factor"], params["high_freq_factor"], params["factor"]
    smooth = (old_len / wavelen - low) / (high - low)
    blended = 1.0 / ((1 - smooth) / factor + smooth)
    divisors = np.where(wavelen > old_len / low, factor, blended)
    return np.where(wavelen < old_len / high, 1.0, divisors)
