"""Checkpoint: what every loader returns — config, HF-named tensors, tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from llmos.drivers.config import ModelConfig
from llmos.drivers.tokenizer import Tokenizer


@dataclass
class Checkpoint:
    """A loaded model on the host, before the driver places it on a device.

    ``tensors`` use HF Llama names (``model.layers.0.self_attn.q_proj.weight``,
    ``model.embed_tokens.weight``, ``lm_head.weight`` when untied), in the
    dtype they were stored in (the driver casts). ``source`` is the file or
    folder it came from.
    """

    name: str
    source: Path
    config: ModelConfig
    tensors: dict[str, torch.Tensor]
    tokenizer: Tokenizer
