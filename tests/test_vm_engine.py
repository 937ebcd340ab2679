"""Virtual memory under a real (tiny, random) model: STOP/CONT through every tier,
a corrupt swap page, fork, the prefix cache and preemption by page-out.

Every check compares tokens with an uninterrupted greedy run of the same
engine code on its own (no swap, no cache, a roomy pool). Before a stopped
process is continued, every device frame the memory manager can hand out is
taken and filled with noise, as other processes would, so a page that comes
back from the wrong place changes the tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
import torch

from llmos.drivers.loaders.hf import load_hf_folder
from llmos.drivers.torch.kv_pool import page_bytes
from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.memory import NOT_RESIDENT
from llmos.kernel.pages import pages_for
from llmos.kernel.process import ExitStatus, Process, ProcessState
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.tiers import Tier

PAGE_SIZE = 4
MAX_STEPS = 2000
GREEDY = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
PROMPTS = [
    "Paged attention keeps the KV cache in fixed-size blocks.",
    "An operating system schedules processes and pages their memory.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, how are you today?",
]
EngineFactory = Callable[..., Engine]


class Reference(Protocol):
    """The greedy tokens of an uninterrupted run of ``prompt``."""

    def __call__(self, prompt: str, max_tokens: int = ...) -> list[int]: ...


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny matmuls on a busy two-core machine are ~50x slower with two threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bytes_per_page(tiny_model_dir: Path) -> int:
    config = load_hf_folder(tiny_model_dir).config
    return page_bytes(config, PAGE_SIZE, torch.float32)


@pytest.fixture
def make_engine(tiny_model_dir: Path, bytes_per_page: int) -> Iterator[EngineFactory]:
    """Engines on the tiny model sized in pages; their swap files go at teardown."""
    engines: list[Engine] = []

    def make(
        num_pages: int = 64, host_pages: int = 32, disk_pages: int = 32, **config: object
    ) -> Engine:
        settings = EngineConfig(
            dtype="float32",
            page_size=PAGE_SIZE,
            kv_budget=num_pages * bytes_per_page,
            host_swap=host_pages * bytes_per_page,
            disk_swap=disk_pages * bytes_per_page,
            **config,  # type: ignore[arg-type]
        )
        engine = Engine.from_model(str(tiny_model_dir), settings)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> Iterator[Reference]:
    """The greedy tokens of an uninterrupted run of one prompt, alone, on a roomy engine."""
    config = EngineConfig(
        dtype="float32",
        page_size=PAGE_SIZE,
        kv_budget=1 << 20,
        host_swap=0,
        disk_swap=0,
        prefix_cache=False,
    )
    engine = Engine.from_model(str(tiny_model_dir), config)
    runs: dict[tuple[str, int], list[int]] = {}

    def run(prompt: str, max_tokens: int = GREEDY.max_tokens) -> list[int]:
        if (prompt, max_tokens) not in runs:
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
            [done] = engine.generate([prompt], params)
            runs[prompt, max_tokens] = done.token_ids
        return runs[prompt, max_tokens]

    yield run
    engine.close()


def step_until(engine: Engine, done: Callable[[], bool]) -> None:
    for _ in range(MAX_STEPS):
        if done():
            return
        engine.step()
    raise AssertionError("the engine did not get there")


def run_to_end(engine: Engine) -> None:
    step_until(engine, lambda: not engine.has_work)


def flood_device(engine: Engine) -> None:
    """Take every frame the memory manager can give (evicting the cache), fill them with
    noise and give them back: what other processes would leave behind."""
    memory = engine.memory
    frames = memory.allocate(memory.num_free_pages)
    pool = engine.driver.kv_cache
    noise = torch.Generator().manual_seed(0)
    for frame in frames:
        slots = pool[:, :, :, frame * PAGE_SIZE : (frame + 1) * PAGE_SIZE]
        slots.copy_(torch.randn(slots.shape, generator=noise) * 4)
    memory.unref(frames)
    assert memory.take_moves() == []


def assert_no_page_held(engine: Engine) -> None:
    memory = engine.memory
    assert memory.num_free_pages == memory.allocator.num_pages
    for tier in (Tier.HOST, Tier.DISK):
        if tier in memory.tiers:
            assert memory.tiers[tier].num_free == memory.tiers[tier].num_pages, tier


# -- STOP, page out, CONT --------------------------------------------------


@pytest.mark.parametrize(
    ("host_pages", "disk_pages", "tier"),
    [(32, 0, Tier.HOST), (2, 32, Tier.DISK), (0, 32, Tier.DISK), (0, 0, None)],
    ids=["host", "host-too-small", "disk", "no-swap"],
)
def test_stop_and_cont_resume_exactly(
    make_engine: EngineFactory,
    reference: Reference,
    host_pages: int,
    disk_pages: int,
    tier: Tier | None,
) -> None:
    engine = make_engine(host_pages=host_pages, disk_pages=disk_pages)
    process = engine.add(PROMPTS[0], GREEDY)
    step_until(engine, lambda: process.num_generated >= 8)
    num_pages = len(process.block_table)
    assert num_pages == pages_for(process.num_computed_tokens, PAGE_SIZE) > 2

    engine.signal(process.pid, "STOP")
    assert process.state is ProcessState.STOPPED and not engine.has_work
    assert engine.memory.num_free_pages == engine.memory.allocator.num_pages
    if tier is None:  # no swap room: its K/V is dropped and recomputed
        assert process.block_table == [] and process.swapped == {}
        assert process.num_computed_tokens == 0 and process.num_page_outs == 0
    else:
        assert process.block_table == [NOT_RESIDENT] * num_pages
        assert sorted(process.swapped) == list(range(num_pages))
        assert {t for t, _ in process.swapped.values()} == {tier}
        assert process.num_page_outs == num_pages
    flood_device(engine)

    engine.signal(process.pid, "CONT")
    run_to_end(engine)
    assert process.exit_status is ExitStatus.LENGTH
    assert process.generated_ids == reference(PROMPTS[0])
    assert process.num_page_ins == (0 if tier is None else num_pages)
    assert_no_page_held(engine)


def test_a_corrupt_disk_page_fails_only_its_process(
    make_engine: EngineFactory, reference: Reference
) -> None:
    engine = make_engine(host_pages=0, disk_pages=32)
    victim = engine.add(PROMPTS[0], GREEDY)
    bystander = engine.add(PROMPTS[1], GREEDY)
    step_until(engine, lambda: victim.num_generated >= 4)
    engine.signal(victim.pid, "STOP")
    tier, slot = victim.swapped[1]
    assert tier is Tier.DISK
    disk = engine.driver.swap.disk
    assert disk is not None
    disk[slot, 7] ^= 0x10  # one bit of the swap file, behind the checksum's back
    for _ in range(3):
        engine.step()

    engine.signal(victim.pid, "CONT")
    run_to_end(engine)
    assert victim.exit_status is ExitStatus.ERROR
    assert victim.error is not None and "checksum" in victim.error
    assert bystander.exit_status is ExitStatus.LENGTH
    assert bystander.generated_ids == reference(PROMPTS[1])
    assert_no_page_held(engine)


# -- fork ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_batched", "fork_when"),
    [(512, "decode"), (4, "prefill")],
    ids=["mid-decode", "mid-prefill"],
)
def test_greedy_children_continue_as_the_parent_would(
    make_engine: EngineFactory,
    reference: Reference,
    max_batched: int,
    fork_when: str,
) -> None:
    engine = make_engine(max_num_batched_tokens=max_batched)
    parent = engine.add(PROMPTS[0], GREEDY)
    if fork_when == "decode":
        step_until(engine, lambda: parent.num_generated >= 5)
    else:
        step_until(engine, lambda: parent.num_computed_tokens >= 2 * PAGE_SIZE)
        assert parent.num_computed_tokens < parent.num_prompt_tokens
    children = engine.fork(parent.pid, [100, 101], [None, None])
    run_to_end(engine)
    expected = reference(PROMPTS[0])
    assert parent.generated_ids == expected
    for child in children:
        assert child.ppid == parent.pid and child.exit_status is ExitStatus.LENGTH
        assert child.generated_ids == expected
    assert_no_page_held(engine)


def test_seeded_children_diverge_and_leave_the_parent_alone(
    make_engine: EngineFactory, reference: Reference
) -> None:
    engine = make_engine()
    parent = engine.add(PROMPTS[1], GREEDY)
    step_until(engine, lambda: parent.num_generated >= 4)
    forked_at = parent.num_tokens
    params = [
        SamplingParams(temperature=1.0, seed=seed, max_tokens=24, ignore_eos=True)
        for seed in (1, 1, 2)
    ]
    twin, same_seed, other_seed = engine.fork(parent.pid, [100, 101, 102], list(params))
    run_to_end(engine)
    assert parent.generated_ids == reference(PROMPTS[1])
    for child in (twin, same_seed, other_seed):
        assert child.token_ids[:forked_at] == parent.token_ids[:forked_at]
    assert twin.token_ids == same_seed.token_ids
    assert twin.token_ids[forked_at:] != other_seed.token_ids[forked_at:]
    assert_no_page_held(engine)


def test_a_child_without_params_draws_the_parents_random_stream(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    sampled = SamplingParams(temperature=1.0, seed=5, max_tokens=24, ignore_eos=True)
    parent = engine.add(PROMPTS[2], sampled)
    step_until(engine, lambda: parent.num_generated >= 4)
    [child] = engine.fork(parent.pid, [100], [None])
    run_to_end(engine)
    assert child.token_ids == parent.token_ids


def test_fork_costs_a_reference_per_page_and_no_frame_until_a_write(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(prefix_cache=False)
    memory = engine.memory
    parent = engine.add(PROMPTS[0], GREEDY)
    step_until(engine, lambda: parent.num_generated >= 3)
    assert parent.num_computed_tokens % PAGE_SIZE != 0  # the last page is partly filled
    frames = list(parent.block_table)
    refcounts = [memory.allocator.refcount(f) for f in frames]
    num_free = memory.allocator.num_free
    children = engine.fork(parent.pid, [100, 101, 102], [None, None, None])
    assert memory.allocator.num_free == num_free
    assert [memory.allocator.refcount(f) for f in frames] == [n + 3 for n in refcounts]
    assert all(child.block_table == frames for child in children)

    engine.step()  # all four write their next token into the shared last page
    assert memory.allocator.num_free == num_free - 3
    tails = {p.block_table[-1] for p in (parent, *children)}
    assert len(tails) == 4 and all(memory.allocator.refcount(f) == 1 for f in tails)
    assert [memory.allocator.refcount(f) for f in frames[:-1]] == [n + 3 for n in refcounts[:-1]]


# -- the prefix cache ------------------------------------------------------


def test_a_repeated_prompt_computes_only_its_tail(
    make_engine: EngineFactory, reference: Reference
) -> None:
    engine = make_engine()
    [first] = engine.generate([PROMPTS[0]], GREEDY)
    second = engine.add(PROMPTS[0], GREEDY)
    run_to_end(engine)
    num_prompt = second.num_prompt_tokens
    assert num_prompt >= 3 * PAGE_SIZE
    assert second.num_cached_tokens == (num_prompt - 1) // PAGE_SIZE * PAGE_SIZE > 0
    assert second.num_prefill_tokens == num_prompt - second.num_cached_tokens
    assert first.token_ids == second.generated_ids == reference(PROMPTS[0])


def test_colliding_hashes_never_serve_another_prompts_pages(
    make_engine: EngineFactory, reference: Reference
) -> None:
    engine = make_engine()
    assert engine.memory.cache is not None
    engine.memory.cache.hash_fn = lambda _: 0
    shared_start = PROMPTS[0][:20] + PROMPTS[2]  # same first pages, then not
    prompts = [PROMPTS[0], shared_start, PROMPTS[1], PROMPTS[0]]
    first = engine.generate(prompts[:2], GREEDY)
    second = engine.generate(prompts[2:], GREEDY)
    for prompt, done in zip(prompts, first + second, strict=True):
        assert done.token_ids == reference(prompt), prompt
    assert engine.memory.cache.num_hits > 0  # the repeated prompt still hit its first page


def test_salt_per_uid_keeps_cached_pages_to_their_uid(
    make_engine: EngineFactory, reference: Reference
) -> None:
    engine = make_engine(prefix_salt_per_uid=True)
    owner = engine.add(PROMPTS[0], GREEDY, uid=1)
    run_to_end(engine)
    stranger = engine.add(PROMPTS[0], GREEDY, uid=2)
    run_to_end(engine)
    again = engine.add(PROMPTS[0], GREEDY, uid=1)
    run_to_end(engine)
    assert owner.num_cached_tokens == stranger.num_cached_tokens == 0
    assert again.num_cached_tokens > 0
    expected = reference(PROMPTS[0])
    assert owner.generated_ids == stranger.generated_ids == again.generated_ids == expected


# -- preemption ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host_pages", "disk_pages"), [(64, 0), (0, 64)], ids=["to-host", "to-disk"]
)
def test_preempted_processes_finish_as_if_alone(
    make_engine: EngineFactory,
    reference: Reference,
    host_pages: int,
    disk_pages: int,
) -> None:
    engine = make_engine(num_pages=24, host_pages=host_pages, disk_pages=disk_pages)
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    processes: list[Process] = [engine.add(p, params) for p in PROMPTS]
    run_to_end(engine)
    for prompt, process in zip(PROMPTS, processes, strict=True):
        assert process.exit_status is ExitStatus.LENGTH
        assert process.generated_ids == reference(prompt, params.max_tokens), prompt
    assert engine.memory.num_page_outs > 0 and engine.memory.num_page_ins > 0
    assert sum(p.num_preemptions for p in processes) > 0
    assert_no_page_held(engine)
