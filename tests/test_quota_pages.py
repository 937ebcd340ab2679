"""The per-uid page quota while processes grow, simulated (tests/sim_driver.py): a uid is
reclaimed from its own processes, never from another's, one process ends with ``length``
once its context fills the whole quota, and no page leaks, with recompute or with swap.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_driver import Request, SimDriver, SimTokenizer, Simulation, StepCost, WorkloadRun

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.memory import NOT_RESIDENT
from llmos.kernel.process import ExitStatus, ProcessState
from llmos.syscalls.errors import OutOfMemory
from llmos.syscalls.sampling import SamplingParams
from llmos.syscalls.tiers import Tier

CHEAP = StepCost(fixed=0.01, per_token=0.0)
PAGE_SIZE = 16  # the simulator's


def frames_per_uid(run: WorkloadRun) -> dict[int, int]:
    """Distinct device frames the running processes of each uid hold."""
    frames: dict[int, set[int]] = {}
    for process in run.engine.scheduler.running:
        held = frames.setdefault(process.uid, set())
        held.update(f for f in process.block_table if f != NOT_RESIDENT)
    return {uid: len(held) for uid, held in frames.items()}


def swapping_run(workload: list[Request], **config: object) -> WorkloadRun:
    """A workload run whose victims go to a host swap tier instead of being recomputed."""
    driver = SimDriver(cost=CHEAP)
    driver.num_host_pages = 4096
    engine = Engine(driver, EngineConfig(page_size=PAGE_SIZE, **config))  # type: ignore[arg-type]
    return WorkloadRun(engine, workload, driver)


def test_one_process_ends_with_length_once_its_context_fills_the_quota() -> None:
    sim = Simulation("fcfs", [Request(0.0, 20, 500, uid=1000)], quota_pages=4, cost=CHEAP)
    result = sim.run()
    [process] = sim.processes.values()
    assert result.is_complete and not sim.is_stuck
    assert process.exit_status is ExitStatus.LENGTH
    assert process.num_tokens == 4 * PAGE_SIZE


@pytest.fixture
def chat_engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    """An engine over the simulator whose tokenizer renders a chat as its contents."""

    def render(tokenizer: SimTokenizer, messages: list[dict[str, str]], **_: object) -> str:
        return "".join(m["content"] for m in messages)

    monkeypatch.setattr(SimTokenizer, "apply_chat_template", render, raising=False)
    return Engine(SimDriver(cost=CHEAP), EngineConfig(page_size=PAGE_SIZE, quota_pages=4))  # type: ignore[arg-type]


def test_a_chat_reply_that_fills_the_quota_ends_the_process(chat_engine: Engine) -> None:
    params = SamplingParams(max_tokens=500, ignore_eos=True)
    process = chat_engine.add([{"role": "user", "content": "hi"}], params, chat=True, uid=1000)
    while chat_engine.has_work:
        chat_engine.step()
    assert process.exit_status is ExitStatus.LENGTH
    assert process.num_tokens == 4 * PAGE_SIZE


def test_a_write_past_the_quota_fails_with_enomem_and_the_chat_waits_on(
    chat_engine: Engine,
) -> None:
    params = SamplingParams(max_tokens=30, ignore_eos=True)
    process = chat_engine.add([{"role": "user", "content": "hi"}], params, chat=True, uid=1000)
    while chat_engine.has_work:
        chat_engine.step()
    with pytest.raises(OutOfMemory):
        chat_engine.write(process.pid, "x" * 40)  # 32 + 40 tokens: more than 4 pages
    assert process.state is ProcessState.WAITING and process.num_tokens == 32
    chat_engine.write(process.pid, "x" * 20)
    while chat_engine.has_work:
        chat_engine.step()
    assert process.exit_status is ExitStatus.LENGTH  # a reply of 30 does not fit: it ended
    assert process.num_tokens == 4 * PAGE_SIZE


def test_a_uid_over_its_quota_is_reclaimed_from_its_own_processes_only() -> None:
    limited = [Request(0.0, 16, 100, uid=1000) for _ in range(3)]
    others = [Request(0.0, 16, 30, uid=1001) for _ in range(2)]  # 3 pages each: within
    others.append(Request(0.0, 16, 100, uid=0))  # root: no quota
    sim = Simulation("fcfs", [*limited, *others], quota_pages=6, cost=CHEAP)
    while not sim.is_done:
        sim.step()
        assert frames_per_uid(sim).get(1000, 0) <= 6
    result = sim.result()
    assert result.is_complete
    assert sum(o.num_preemptions for o in result.outcomes[:3]) >= 1
    assert all(o.num_preemptions == 0 for o in result.outcomes[3:])
    assert [p.exit_status for p in sim.processes.values()] == [ExitStatus.LENGTH] * 6
    assert [p.num_tokens for p in sim.processes.values()][3:] == [46, 46, 116]


def test_a_reclaimed_process_swaps_out_and_finishes_with_every_token() -> None:
    workload = [Request(0.0, 16, 40, uid=1000) for _ in range(2)]
    run = swapping_run(workload, quota_pages=4)
    while not run.is_done:
        run.step()
        assert frames_per_uid(run).get(1000, 0) <= 4
    assert run.result().is_complete
    assert sum(p.num_page_outs for p in run.processes.values()) >= 1
    assert all(p.num_generated == 40 for p in run.processes.values())
    assert run.engine.memory.tiers[Tier.HOST].num_free == 4096


@settings(max_examples=30, deadline=None)
@given(
    policy=st.sampled_from(["fcfs", "priority", "fair", "mlfq"]),
    jobs=st.lists(
        st.tuples(st.integers(0, 2), st.floats(0.0, 0.5), st.integers(1, 90), st.integers(1, 90)),
        min_size=1,
        max_size=12,
    ),
    quota_pages=st.integers(6, 12),
    max_num_seqs=st.integers(1, 6),
    swap=st.booleans(),
    prefix_cache=st.booleans(),
)
def test_no_uid_passes_its_quota_and_no_page_leaks(
    policy: str,
    jobs: list[tuple[int, float, int, int]],
    quota_pages: int,
    max_num_seqs: int,
    swap: bool,
    prefix_cache: bool,
) -> None:
    """uid 0 is root (no quota); prompts always fit the quota, as spawn checks."""
    workload = [Request(t, p, o, uid=1000 * u) for u, t, p, o in jobs]
    config = {
        "max_num_seqs": max_num_seqs,
        "prefix_cache": prefix_cache,
        "quota_pages": quota_pages,
    }
    run: WorkloadRun
    if swap:
        run = swapping_run(workload, sched=policy, **config)
    else:
        run = Simulation(policy, workload, cost=CHEAP, **config)
    while not run.is_done:
        run.step()
        over = {u: n for u, n in frames_per_uid(run).items() if u and n > quota_pages}
        assert not over
    assert run.result().is_complete and not run.is_stuck
    memory = run.engine.memory  # only the prefix cache keeps pages, and it lets them go
    assert memory.num_free_pages == memory.allocator.num_pages
    assert all(a.num_free == a.num_pages for t, a in memory.tiers.items() if t is not Tier.DEVICE)
