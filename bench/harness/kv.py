"""How much KV cache a workload needs, from the model's config.json."""

from __future__ import annotations

import json
from pathlib import Path

from harness.workloads import Workload


def kv_bytes_per_token(config_json: Path, dtype: str) -> int:
    """The K and V bytes one token takes over all layers."""
    cfg = json.loads(config_json.read_text())
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    elem = 2 if dtype == "bfloat16" else 4
    return int(2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * elem)


def kv_budget(workloads: dict[str, Workload], config_json: Path, dtype: str) -> int:
    """Enough KV pool for the largest workload, plus a page of slack per sequence."""
    need = max(w.useful_tokens + 16 * len(w.prompts) for w in workloads.values())
    return max(int(need * kv_bytes_per_token(config_json, dtype) * 1.25), 64 * 1024**2)
