"""The engine loop on tiny real models: continuous batching against transformers' generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tinymodels import load_tiny_hf_model, make_tiny_hf_model

from llmos.drivers.loaders.hf import load_hf_folder
from llmos.drivers.torch.driver import TorchDriver
from llmos.drivers.torch.kv_pool import page_bytes
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.process import ExitStatus
from llmos.syscalls.errors import ContextOverflow, InvalidArgument, NotFound, OutOfMemory
from llmos.syscalls.sampling import SamplingParams

PROMPTS = [
    "The quick brown fox",
    "Hello world! Hello there, how are you today? Paged attention keeps",
    "An operating system",
    "Numbers like 12345 and 2024 appear in text, as do",
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_hf_model(tmp_path_factory.mktemp("tiny") / "llama", arch="llama")


def make_engine(folder: Path, num_pages: int = 256, **config: object) -> Engine:
    checkpoint = load_hf_folder(folder)
    budget = num_pages * page_bytes(checkpoint.config, 4, torch.float32)
    settings = EngineConfig(dtype="float32", page_size=4, kv_budget=budget, **config)  # type: ignore[arg-type]
    driver = TorchDriver(
        checkpoint, dtype="float32", page_size=4, kv_budget=budget, max_model_len=128
    )
    return Engine(driver, settings)


def reference_greedy(folder: Path, prompt_ids: list[int], num: int) -> list[int]:
    """Plain greedy decoding with transformers' model (no EOS suppression, no cache)."""
    model = load_tiny_hf_model(folder)
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(num):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt_ids) :]


GREEDY = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)


@pytest.mark.parametrize(
    "settings",
    [
        {},  # whole prompts in one step
        {"max_num_batched_tokens": 6},  # chunked prefill mixed with decodes
        {"num_pages": 40},  # too few pages for all: preemption and recompute
    ],
    ids=["plain", "chunked", "preempting"],
)
def test_greedy_batch_equals_transformers(tiny_folder: Path, settings: dict[str, int]) -> None:
    engine = make_engine(tiny_folder, **settings)
    free_before = engine.memory.num_free_pages
    done = engine.generate(PROMPTS, GREEDY)
    for completion in done:
        expected = reference_greedy(tiny_folder, completion.prompt_token_ids, 40)
        assert completion.token_ids == expected
        assert completion.exit_status is ExitStatus.LENGTH
    assert engine.memory.num_free_pages == free_before
    if settings.get("num_pages"):
        assert sum(c.stats["num_preemptions"] for c in done) > 0


def test_processes_join_at_different_steps(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    procs = []
    for prompt in PROMPTS:
        procs.append(engine.add(prompt, GREEDY))
        for _ in range(3):
            engine.step()
    while engine.has_work:
        engine.step()
    for proc in procs:
        expected = reference_greedy(tiny_folder, proc.token_ids[: proc.num_prompt_tokens], 40)
        assert proc.generated_ids == expected


def test_same_seed_same_text_different_seed_diverges(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    params = [
        SamplingParams(temperature=1.0, seed=s, max_tokens=30, ignore_eos=True) for s in (7, 7, 8)
    ]
    alone = engine.generate([PROMPTS[0]], params[0])[0].token_ids
    a, b, c = engine.generate([PROMPTS[0]] * 3, params)
    assert a.token_ids == b.token_ids == alone
    assert c.token_ids != a.token_ids


def test_stop_token_and_stop_string(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    [full] = engine.generate([PROMPTS[1]], GREEDY)
    stop_id = full.token_ids[5]
    params = SamplingParams(temperature=0.0, max_tokens=40, stop_token_ids=[stop_id])
    [stopped] = engine.generate([PROMPTS[1]], params)
    assert stopped.exit_status is ExitStatus.STOP
    assert stopped.token_ids == full.token_ids[: full.token_ids.index(stop_id) + 1]
    text = full.text
    needle = next(
        text[i : i + 2] for i in range(len(text) // 2, len(text)) if "\ufffd" not in text[i : i + 2]
    )
    stop_params = SamplingParams(temperature=0.0, max_tokens=40, stop=[needle], ignore_eos=True)
    [cut] = engine.generate([PROMPTS[1]], stop_params)
    assert cut.exit_status is ExitStatus.STOP
    assert cut.text == text[: text.index(needle)]


def test_chat_messages_use_the_template(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    messages = [{"role": "user", "content": "Hello there"}]
    proc = engine.add(messages, GREEDY)
    rendered = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert proc.token_ids == engine.tokenizer.encode(rendered, add_special_tokens=False)
    engine.kill(proc.pid)


def test_kill_frees_every_page(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    free_before = engine.memory.num_free_pages
    procs = [engine.add(p, GREEDY) for p in PROMPTS]
    for _ in range(5):
        engine.step()
    assert engine.memory.num_free_pages < free_before
    for proc in procs:
        engine.kill(proc.pid)
        assert proc.exit_status is ExitStatus.KILLED
    assert engine.memory.num_free_pages == free_before
    assert not engine.has_work
    with pytest.raises(NotFound):
        engine.kill(999)


def test_bad_input_is_a_typed_error_and_leaks_nothing(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder, num_pages=8)
    free_before = engine.memory.num_free_pages
    with pytest.raises(ContextOverflow):
        engine.add(list(range(5)) * 40, GREEDY)  # 200 tokens > 128 context
    with pytest.raises(InvalidArgument):
        engine.add(PROMPTS[0], SamplingParams(max_tokens=-1))
    with pytest.raises(InvalidArgument):
        engine.add([10**9], GREEDY)
    with pytest.raises(ContextOverflow):
        engine.add("", GREEDY)
    with pytest.raises(OutOfMemory):
        engine.add(list(range(5)) * 10, GREEDY)  # 50 tokens never fit in 8 pages of 4
    assert engine.memory.num_free_pages == free_before
    assert not engine.has_work


def test_context_limit_ends_with_length(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    prompt = list(range(3, 123))  # 120 tokens; the context is 128
    [done] = engine.generate(
        [prompt], SamplingParams(temperature=0.0, max_tokens=50, ignore_eos=True)
    )
    assert done.exit_status is ExitStatus.LENGTH
    assert len(done.token_ids) == 8


def test_streamed_text_never_includes_a_stop_string(tiny_folder: Path) -> None:
    engine = make_engine(tiny_folder)
    [full] = engine.generate([PROMPTS[1]], GREEDY)
    needle = full.text[len(full.text) // 2 :][:3]
    params = SamplingParams(temperature=0.0, max_tokens=40, stop=[needle], ignore_eos=True)
    proc = engine.add(PROMPTS[1], params)
    streamed = ""
    while engine.has_work:
        streamed += "".join(out.text for out in engine.step())
    assert streamed == proc.text
    assert needle not in streamed


def test_held_back_finds_stop_prefixes() -> None:
    from llmos.kernel.stopping import held_back

    assert held_back("hello wor", ["world"]) == 3
    assert held_back("hello", ["world"]) == 0
    assert held_back("abc<|e", ["<|end|>", "c<"]) == 3
    assert held_back("anything", []) == 0
