"""Place HF-named checkpoint tensors into a CausalLM, fusing qkv and gate/up."""

from __future__ import annotations

import torch

from llmos.drivers.config import ModelConfig
from llmos.drivers.torch.linear import pack_linears
from llmos.drivers.torch.model import CausalLM, RotaryEmbedding
from llmos.syscalls.errors import BadModelFile

_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
_FUSED = {
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
}


def build_model(
    config: ModelConfig,
    tensors: dict[str, torch.Tensor],
    dtype: torch.dtype,
    device: torch.device,
    max_positions: int | None = None,
    pack: bool = True,
) -> CausalLM:
    """A ready-to-run model on ``device`` in ``dtype``; raise BadModelFile on missing weights.

    ``pack`` pre-packs linear weights for oneDNN where the device allows it.
    """
    with torch.device("meta"):
        model = CausalLM(config, max_positions)
    state = _our_state_dict(config, tensors)
    state = {name: t.to(device=device, dtype=dtype) for name, t in state.items()}
    missing = set(model.state_dict()) - set(state)
    if config.tie_word_embeddings:
        missing.discard("lm_head.weight")
    if missing:
        raise BadModelFile(f"checkpoint lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.rotary = RotaryEmbedding(config, max_positions or config.max_position_embeddings).to(
        device
    )
    model.eval().requires_grad_(False)
    if pack:
        pack_linears(model)
    return model


def _our_state_dict(
    config: ModelConfig, tensors: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith(_IGNORED_SUFFIXES):
            continue
        state[name.removeprefix("model.")] = tensor
    for layer in range(config.num_hidden_layers):
        prefix = f"layers.{layer}."
        for fused, parts in _FUSED.items():
            for kind in ("weight", "bias"):
                names = [f"{prefix}{part}.{kind}" for part in parts]
                present = [n for n in names if n in state]
                if not present:
                    continue
                if len(present) != len(names):
                    raise BadModelFile(f"checkpoint has only some of {names}")
                state[f"{prefix}{fused}.{kind}"] = torch.cat([state.pop(n) for n in names])
    return state
