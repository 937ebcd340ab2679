"""GGUF end to end through our loader, our model and our engine (not transformers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gguf import GGMLQuantizationType as Q
from tinymodels import load_tiny_hf_model, make_tiny_hf_model, write_tiny_gguf

from llmos.drivers.loaders.gguf import load_gguf
from llmos.drivers.torch.driver import TorchDriver
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.syscalls.sampling import SamplingParams

# Relative L2 error of our logits against the float32 original (see test_loader_gguf).
TOLERANCE = {Q.F32: 1e-5, Q.F16: 5e-3, Q.Q8_0: 0.06, Q.Q4_0: 0.6}
PROMPT = list(range(3, 45))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_model(tmp_path_factory.mktemp("hf") / "llama", "llama")


@pytest.mark.parametrize("tensor_type", list(TOLERANCE), ids=lambda q: q.name)
def test_gguf_logits_through_our_engine(folder: Path, tmp_path: Path, tensor_type: Q) -> None:
    checkpoint = load_gguf(write_tiny_gguf(folder, tmp_path / "m.gguf", tensor_type))
    driver = TorchDriver(checkpoint, dtype="float32", kv_budget=8 * 1024**2, max_model_len=128)
    engine = Engine(driver, EngineConfig(dtype="float32"))
    process = engine.add(PROMPT, SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True))
    logits: list[torch.Tensor] = []
    original_compute = driver.model.compute_logits

    def recording(hidden: torch.Tensor) -> torch.Tensor:
        out = original_compute(hidden)
        logits.append(out)
        return out

    driver.model.compute_logits = recording  # type: ignore[method-assign]
    while engine.has_work:
        engine.step()
    with torch.no_grad():
        want = load_tiny_hf_model(folder)(torch.tensor([PROMPT])).logits[0, -1]
    got = logits[0][0]
    assert float((got - want).norm() / want.norm()) <= TOLERANCE[tensor_type]
    assert process.generated_ids == [int(got.argmax())]
    assert engine.memory.num_free_pages == engine.memory.allocator.num_pages
