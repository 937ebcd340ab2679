"""ModelConfig: the shape of a Llama-family model, read from an HF ``config.json`` dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmos.syscalls.errors import BadModelFile

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


@dataclass(frozen=True)
class ModelConfig:
    """Every dimension the torch driver needs; field names follow HF's."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    sliding_window: int | None = None
    bos_token_id: int | None = None
    eos_token_id: list[int] = field(default_factory=list)

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> ModelConfig:
        """Build from an HF config dict; raise :class:`BadModelFile` if unsupported."""
        model_type = str(cfg.get("model_type", "llama"))
        if model_type not in SUPPORTED_ARCHITECTURES:
            raise BadModelFile(
                f"unsupported architecture {model_type!r}; "
                f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        try:
            num_heads = int(cfg["num_attention_heads"])
            hidden = int(cfg["hidden_size"])
            eos = cfg.get("eos_token_id")
            rope = _rope_parameters(cfg)
            return cls(
                model_type=model_type,
                vocab_size=int(cfg["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(cfg["intermediate_size"]),
                num_hidden_layers=int(cfg["num_hidden_layers"]),
                num_attention_heads=num_heads,
                num_key_value_heads=int(cfg.get("num_key_value_heads") or num_heads),
                head_dim=int(cfg.get("head_dim") or hidden // num_heads),
                max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
                rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
                rope_theta=float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
                rope_scaling=rope or None,
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                attention_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
                sliding_window=_sliding_window(cfg),
                bos_token_id=cfg.get("bos_token_id"),
                eos_token_id=[] if eos is None else ([eos] if isinstance(eos, int) else list(eos)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadModelFile(f"config.json is missing or has a bad field: {exc}") from exc

    @property
    def num_kv_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads


def _rope_parameters(cfg: dict[str, Any]) -> dict[str, Any]:
    # Older configs say `rope_scaling` (+ top-level rope_theta); newer ones `rope_parameters`.
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise TypeError(f"rope parameters must be a mapping, got {params!r}")
    return dict(params)


def _sliding_window(cfg: dict[str, Any]) -> int | None:
    if cfg.get("use_sliding_window") is False:
        return None
    window = cfg.get("sliding_window")
    return int(window) if window else None
