"""The real default model, SmolLM2-135M-Instruct: exact greedy tokens against transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from llmos.drivers.loaders.cache import cache_folder
from llmos.drivers.loaders.registry import resolve
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.errors import NotFound
from llmos.syscalls.sampling import SamplingParams

pytestmark = pytest.mark.slow

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Explain what an operating system does."},
    ],
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llmos-data")


def test_greedy_chat_tokens_equal_transformers(data_dir: Path) -> None:
    config = EngineConfig(dtype="float32", kv_budget=256 * 1024**2)
    engine = Engine.from_model("smollm2", config, data_dir=data_dir)
    params = SamplingParams(temperature=0.0, max_tokens=32, ignore_eos=True)
    ours = engine.generate(CHATS, params)
    folder = cache_folder(resolve("smollm2"), data_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for completion in ours:
        ids = torch.tensor([completion.prompt_token_ids])
        with torch.no_grad():
            out = reference.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=32,
                do_sample=False,
                pad_token_id=2,
            )
        expected = out[0, ids.shape[1] :].tolist()
        # transformers stops at EOS; ours ignores it, so compare its full length.
        assert completion.token_ids[: len(expected)] == expected
        assert len(expected) >= 8
    assert engine.memory.num_free_pages == engine.memory.allocator.num_pages


def test_unknown_model_name_is_not_found(data_dir: Path) -> None:
    with pytest.raises(NotFound):
        Engine.from_model("no-such-model", data_dir=data_dir)
