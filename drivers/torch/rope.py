"""Rotary position embeddings: default, linear and llama3 frequency scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from llmos.drivers.config import ModelConfig
from llmos.syscalls.errors import BadModelFile


def inverse_frequencies(config: ModelConfig) -> torch.Tensor:
    """Per-pair inverse frequencies [head_dim/2], after any scaling."""
    dim = config.head_dim
    # float32 throughout, as the reference implementations compute it, so logits match.
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    inv_freq = 1.0 / (config.rope_theta**exponents)
    scaling: dict[str, Any] = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        return _llama3_scaled(inv_freq, scaling)
    raise BadModelFile(f"unsupported rope scaling {kind!r} (supported: default, linear, llama3)")


def _llama3_scaled(inv_freq: torch.Tensor, scaling: dict[str, Any]) -> torch.Tensor:
    # Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old_len = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    is_medium = (wavelen <= old_len / low) & (wavelen >= old_len / high)
    return torch.where(is_medium, blended, scaled)


@dataclass
class RopeBatch:
    """One step's rotary inputs: the positions, the float32 tables (for fused kernels
    that index them), and the gathered cos/sin [T, 1, d] in the model dtype (torch path)."""

    positions: torch.Tensor
    tables: tuple[torch.Tensor, torch.Tensor]
    cos: torch.Tensor | None = None
    sin: torch.Tensor | None = None


class RotaryEmbedding(torch.nn.Module):
    """Precomputed cos/sin tables, indexed by absolute position."""

    def __init__(self, config: ModelConfig, max_positions: int) -> None:
        super().__init__()
        inv_freq = inverse_frequencies(config)
        positions = torch.arange(max_positions, dtype=torch.float32)
        freqs = torch.outer(positions, inv_freq)  # [P, d/2]
        emb = torch.cat([freqs, freqs], dim=-1)  # [P, d]
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def batch(self, positions: torch.Tensor, dtype: torch.dtype, need_tables: bool) -> RopeBatch:
        """The step's rotary inputs; gathers cos/sin only when ``need_tables``."""
        rope = RopeBatch(positions=positions, tables=(self.cos, self.sin))
        if need_tables:
            rope.cos, rope.sin = self.tables(positions, dtype)
        return rope

    def tables(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for these positions, [T, 1, d] so they broadcast over heads."""
        cos = self.cos.index_select(0, positions).to(dtype).unsqueeze(1)
        sin = self.sin.index_select(0, positions).to(dtype).unsqueeze(1)
        return cos, sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [T, heads, d] by the tables (HF's rotate-half layout)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin
