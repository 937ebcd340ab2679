"""The transformers baselines: ``generate`` as one left-padded batch, or one prompt at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PAD_ID = 2  # SmolLM2's <|endoftext|>; always masked out


def hf_generate(model: Any, prompts: list[list[int]], new_tokens: int) -> int:
    """One left-padded greedy batch of exactly ``new_tokens`` each; returns tokens generated."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=PAD_ID,
    )
    generated = int(out.shape[1]) - width
    if generated != new_tokens:
        raise RuntimeError(f"transformers generated {generated} tokens, asked {new_tokens}")
    return generated * len(prompts)


def hf_sequential(model: Any, prompts: list[list[int]], new_tokens: int) -> int:
    """``prompts`` one at a time; returns tokens generated."""
    return sum(hf_generate(model, [p], new_tokens) for p in prompts)


def load_hf_model(folder: Path, dtype: str) -> Any:
    """The HF model in ``folder``, in eval mode, transformers' logging quiet."""
    import transformers

    hf: Any = transformers  # untyped in places
    hf.logging.set_verbosity_error()
    hf.utils.logging.disable_progress_bar()
    model: Any = hf.AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    return model.eval()
