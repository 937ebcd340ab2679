"""Scheduling policies, simulated: the kernel's own Engine, Scheduler, policies and
memory manager over ``SimDriver``, a cost-model test double of the torch driver
(tests/sim_driver.py). A step samples a fixed token and costs simulated time, so
every run is deterministic and takes milliseconds; the model itself plays no part
in scheduling. Deterministic cases per policy first, then hypothesis properties.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_driver import Request, Simulation, StepCost, simulate

from llmos.kernel.policies import nice_weight
from llmos.kernel.quotas import Quotas
from llmos.kernel.scheduler import MAX_PREEMPTIONS_PER_STEP
from llmos.syscalls.errors import Busy
from llmos.syscalls.sampling import SamplingParams

STEP = 0.01
CHEAP = StepCost(fixed=STEP, per_token=0.0)  # every step 10 ms: simulated times count steps
MIN_RUN_STEPS = 4
AGING_STEPS = 32  # the priority policy's default
PROPERTY = settings(max_examples=40, deadline=None)
POLICIES = ("fcfs", "priority", "fair", "mlfq")


def long_jobs(n: int, *, nice: int = 0, uid: int = 0, output: int = 500) -> list[Request]:
    return [Request(0.0, 16, output, uid=uid, nice=nice, label="long") for _ in range(n)]


def at_step(step: int) -> float:
    """An arrival time that lands just before step ``step + 1`` (with CHEAP steps)."""
    return step * STEP - STEP / 2


# -- the test double itself ----------------------------------------------------------


def test_a_simulation_is_deterministic() -> None:
    workload = [Request(0.003 * i, 10 + 37 * i % 200, 5 + i % 40, uid=i % 2) for i in range(30)]
    first, second = (simulate("mlfq", workload, max_num_seqs=4) for _ in range(2))
    assert first.is_complete and first.outcomes == second.outcomes
    assert first.seconds == second.seconds > 0


# -- fcfs --------------------------------------------------------------------------


def test_fcfs_serves_in_arrival_order() -> None:
    workload = [Request(0.001 * i, 8 + 13 * i % 40, 16) for i in range(6)]
    result = simulate("fcfs", workload, max_num_seqs=1, cost=CHEAP)
    finished = sorted(result.outcomes, key=lambda o: o.finished_step or 0)
    assert [o.pid for o in finished] == [o.pid for o in result.outcomes]
    assert result.num_preemptions == 0


# -- priority ----------------------------------------------------------------------


def test_priority_admits_the_lowest_nice_first() -> None:
    workload = [Request(0.0, 8, 4, nice=n) for n in (5, 19, -20, 0)]
    result = simulate("priority", workload, max_num_seqs=1, cost=CHEAP)
    by_start = sorted(result.outcomes, key=lambda o: o.started_step or 0)
    assert [o.request.nice for o in by_start] == [-20, 0, 5, 19]


@pytest.mark.parametrize("arrives_after", [1, 10])
def test_priority_preempts_for_a_better_nice_only_after_min_run_steps(arrives_after: int) -> None:
    urgent = Request(at_step(arrives_after), 8, 4, nice=-20)
    result = simulate("priority", [*long_jobs(2, nice=19), urgent], max_num_seqs=2, cost=CHEAP)
    outcome = result.outcomes[-1]
    # the nice-19 ones were admitted at step 1 and may be preempted from step 1 + min_run
    assert outcome.started_step == max(arrives_after + 1, MIN_RUN_STEPS + 1)
    assert sum(o.num_preemptions for o in result.outcomes[:2]) >= 1


def test_priority_aging_lifts_a_nice_19_process_past_a_stream_of_nice_0_work() -> None:
    """Two slots, nice-0 jobs of 8 steps arriving every 4 steps: one is always queued."""
    stream = [Request(at_step(4 * i), 16, 8) for i in range(600)]
    low = Request(at_step(20), 16, 8, nice=19)
    result = simulate("priority", [low, *stream], max_num_seqs=2, cost=CHEAP)
    outcome = result.outcomes[0]
    assert outcome.finished_step is not None
    waited = (outcome.started_step or 0) - outcome.spawned_step
    assert 19 * AGING_STEPS <= waited <= 19 * AGING_STEPS + 4 * MIN_RUN_STEPS
    assert outcome.finished_step < 4 * 600  # long before the stream ends


@settings(max_examples=25, deadline=None)
@given(
    nice=st.integers(1, 19),
    prompt=st.integers(1, 400),
    output=st.integers(1, 8),
    max_num_seqs=st.sampled_from([1, 2, 4]),
    arrives_after=st.integers(1, 30),
)
def test_priority_aging_bounds_the_wait_of_a_low_priority_process(
    nice: int, prompt: int, output: int, max_num_seqs: int, arrives_after: int
) -> None:
    """Nice-0 jobs of 8 steps arrive as fast as the slots serve them, for longer than the
    bound: without aging the nice-``nice`` process would wait for the stream's end."""
    gap = 8 // max_num_seqs
    stream = [Request(at_step(gap * i), 16, 8) for i in range(2500 // gap)]
    low = Request(at_step(arrives_after), prompt, output, nice=nice)
    sim = Simulation("priority", [low, *stream], max_num_seqs=max_num_seqs, cost=CHEAP)
    outcome = sim.outcomes[0]
    while outcome.finished_step is None and not sim.is_done:
        sim.step()
    # each time aging admits it, it runs min_run_steps steps (>= that many tokens)
    cycles = math.ceil(output / MIN_RUN_STEPS) + 1
    assert outcome.finished_step is not None
    assert outcome.finished_step - outcome.spawned_step <= cycles * (nice * AGING_STEPS + 16)


def test_priority_does_not_preempt_among_equal_nice() -> None:
    result = simulate("priority", long_jobs(12, output=100), max_num_seqs=4, cost=CHEAP)
    assert result.num_preemptions == 0


def test_priority_aging_lets_a_long_prompt_finish_without_swap_or_cache() -> None:
    stream = [Request(at_step(4 * i), 16, 8) for i in range(1500)]
    low = Request(at_step(20), 3000, 8, nice=19)
    result = simulate("priority", [low, *stream], max_num_seqs=2, cost=CHEAP, prefix_cache=False)
    assert (result.outcomes[0].finished_step or math.inf) < 4 * 1500


# -- fair --------------------------------------------------------------------------


def ten_to_one(heavy: int, light: int, nice_light: int = 0) -> list[Request]:
    """uid 1 queues ``heavy`` jobs and uid 2 ``light`` ones, all at once, interleaved."""
    jobs = [Request(0.0, 32, 64, uid=1) for _ in range(heavy)]
    for index in range(light):
        jobs.insert(index * (heavy // light + 1), Request(0.0, 32, 64, uid=2, nice=nice_light))
    return jobs


@pytest.mark.parametrize(("policy", "low", "high"), [("fair", 0.45, 0.55), ("fcfs", 0.0, 0.15)])
def test_fair_gives_a_light_uid_half_the_service_while_both_are_backlogged(
    policy: str, low: float, high: float
) -> None:
    result = simulate(policy, ten_to_one(100, 10), max_num_seqs=4, cost=CHEAP)
    assert result.num_backlogged_steps > 100
    assert low <= result.backlogged_share(2) <= high


def test_fair_shares_by_nice_weight() -> None:
    result = simulate("fair", ten_to_one(40, 40, nice_light=5), max_num_seqs=4, cost=CHEAP)
    expected = nice_weight(5) / (nice_weight(0) + nice_weight(5))
    assert result.backlogged_share(2) == pytest.approx(expected, abs=0.03)


def service_bound(budget: int, max_num_seqs: int, min_run_steps: int) -> float:
    """How far two backlogged uids' weighted service may drift apart: the one behind
    waits up to ``min_run_steps`` steps for a victim and turns the batch over a few
    processes per step, while each step serves at most one budget of prompt tokens or
    one decode per slot (at weight 2)."""
    one_step = max(budget * 1.0, max_num_seqs * 2.0)
    turnover = math.ceil(max_num_seqs / MAX_PREEMPTIONS_PER_STEP)
    return (min_run_steps + turnover + 2) * one_step


def max_service_gap(sim: Simulation) -> float:
    """Run ``sim`` to the end; the largest difference between the weighted service uids 1
    and 2 gained since both last became backlogged (had work queued)."""

    def lead() -> float:
        service = sim.service()
        return service.get(1, 0.0) - service.get(2, 0.0)

    gap, base = 0.0, None
    while not sim.is_done:
        sim.arrive()
        backlogged = {p.uid for p in sim.engine.scheduler.waiting} >= {1, 2}
        before = lead()
        sim.step()
        base = (before if base is None else base) if backlogged else None
        if base is not None:
            gap = max(gap, abs(lead() - base))
    return gap


@PROPERTY
@given(
    budget=st.sampled_from([16, 32, 64, 512]),
    max_num_seqs=st.sampled_from([1, 2, 4, 8]),
    min_run_steps=st.integers(0, 6),
    jobs=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.floats(0.0, 1.0), st.integers(1, 64)),
        min_size=4,
        max_size=30,
    ),
)
def test_fair_keeps_backlogged_uids_within_a_few_steps_of_service(
    budget: int, max_num_seqs: int, min_run_steps: int, jobs: list[tuple[int, float, int]]
) -> None:
    workload = [
        Request(0.0, max(1, int(share * budget)), output, uid=uid) for uid, share, output in jobs
    ]
    sim = Simulation(
        "fair",
        workload,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=budget,
        min_run_steps=min_run_steps,
        cost=CHEAP,
    )
    assert max_service_gap(sim) <= service_bound(budget, max_num_seqs, min_run_steps)


def test_fair_does_not_let_a_uid_bank_service_it_did_not_ask_for() -> None:
    workload = [*long_jobs(40, uid=1, output=200), Request(0.0, 16, 3000, uid=2)]
    workload += [Request(at_step(2000), 16, 200, uid=2) for _ in range(20)]
    sim = Simulation("fair", workload, max_num_seqs=4, max_num_batched_tokens=64, cost=CHEAP)
    assert max_service_gap(sim) <= service_bound(64, 4, MIN_RUN_STEPS)


# -- mlfq --------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "short_first"), [("mlfq", True), ("fcfs", False)])
def test_mlfq_finishes_a_short_job_that_arrives_behind_long_ones_first(
    policy: str, short_first: bool
) -> None:
    short = Request(at_step(80), 16, 16, label="short")
    result = simulate(policy, [*long_jobs(4, output=300), short], max_num_seqs=2, cost=CHEAP)
    finished = [o.finished_step or 0 for o in result.outcomes]
    assert (finished[-1] < min(finished[:-1])) is short_first


def test_mlfq_lets_a_long_prompt_join_low_so_a_later_short_one_goes_first() -> None:
    long_prompt = Request(at_step(2), 600, 8)
    short = Request(at_step(2), 16, 8)
    result = simulate("mlfq", [*long_jobs(1), long_prompt, short], max_num_seqs=2, cost=CHEAP)
    assert (result.outcomes[2].started_step or 0) < (result.outcomes[1].started_step or 0)


@PROPERTY
@given(
    longs=st.lists(st.tuples(st.integers(1, 400), st.integers(150, 300)), min_size=1, max_size=6),
    max_num_seqs=st.integers(1, 4),
    arrives_after=st.integers(1, 60),
    short=st.tuples(st.integers(1, 40), st.integers(1, 24)),
)
def test_mlfq_short_job_behind_long_ones_finishes_before_them(
    longs: list[tuple[int, int]],
    max_num_seqs: int,
    arrives_after: int,
    short: tuple[int, int],
) -> None:
    workload = [Request(0.0, p, o) for p, o in longs]
    workload.append(Request(at_step(arrives_after), *short))
    result = simulate("mlfq", workload, max_num_seqs=max_num_seqs, cost=CHEAP)
    finished = [o.finished_step or 0 for o in result.outcomes]
    assert finished[-1] < min(finished[:-1])


# -- every policy ------------------------------------------------------------------

job_lists = st.lists(
    st.tuples(st.floats(0.0, 1.0), st.integers(1, 128), st.integers(1, 32), st.integers(-20, 19)),
    min_size=1,
    max_size=16,
)


def jobs_to_workload(jobs: list[tuple[float, int, int, int]]) -> list[Request]:
    return [Request(t, p, o, uid=1 + n % 2, nice=n) for t, p, o, n in jobs]


@PROPERTY
@given(jobs=job_lists, max_num_seqs=st.integers(1, 4))
def test_priority_with_aging_finishes_every_process_within_a_bound(
    jobs: list[tuple[float, int, int, int]], max_num_seqs: int
) -> None:
    workload = jobs_to_workload(jobs)
    result = simulate("priority", workload, max_num_seqs=max_num_seqs, cost=CHEAP)
    assert result.is_complete
    total_tokens = sum(r.prompt_len + r.output_len for r in workload)
    for outcome in result.outcomes:
        waited = (outcome.finished_step or 0) - outcome.spawned_step
        assert waited <= 40 * AGING_STEPS + total_tokens, outcome


@PROPERTY
@given(policy=st.sampled_from(POLICIES), jobs=job_lists, max_num_seqs=st.integers(1, 4))
def test_preemption_by_rank_waits_min_run_steps(
    policy: str, jobs: list[tuple[float, int, int, int]], max_num_seqs: int
) -> None:
    """With pages for everyone, every preemption is by rank, and none comes before the
    victim ran ``min_run_steps`` steps (so nothing thrashes)."""
    sim = Simulation(policy, jobs_to_workload(jobs), max_num_seqs=max_num_seqs, cost=CHEAP)
    scheduler = sim.engine.scheduler
    while not sim.is_done:
        admitted = {p.pid: p.admitted_step for p in scheduler.running}
        preemptions = {p.pid: p.num_preemptions for p in scheduler.running}
        clock = scheduler.policy.step
        sim.step()
        for process in sim.processes.values():
            if process.num_preemptions > preemptions.get(process.pid, process.num_preemptions):
                assert clock - admitted[process.pid] >= MIN_RUN_STEPS
    assert sim.result().is_complete


@PROPERTY
@given(
    jobs=job_lists,
    switches=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(POLICIES)), max_size=4),
)
def test_switching_policy_mid_run_leaves_every_process_schedulable(
    jobs: list[tuple[float, int, int, int]], switches: list[tuple[int, str]]
) -> None:
    sim = Simulation("fcfs", jobs_to_workload(jobs), max_num_seqs=3, cost=CHEAP)
    for steps, policy in sorted(switches):
        while sim.engine.num_steps < steps and not sim.is_done:
            sim.step()
        sim.engine.set_policy(policy)
    result = sim.run(max_steps=5000)
    assert result.is_complete and not sim.is_stuck


def test_a_policy_switch_keeps_preemption_working() -> None:
    warmup = [Request(at_step(4 * i), 8, 3) for i in range(100)]
    late_longs = [Request(at_step(420), 8, 2000, nice=19) for _ in range(2)]
    sim = Simulation("fcfs", [*warmup, *late_longs], max_num_seqs=2, cost=CHEAP)
    longs = [p for p in sim.processes.values() if p.nice == 19]
    while len(longs) < 2 or min(p.num_sampled for p in longs) < 10:
        sim.step()
        longs = [p for p in sim.processes.values() if p.nice == 19]
    sim.engine.set_policy("priority")
    urgent = sim.engine.add([1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), nice=-20)
    spawned = sim.engine.num_steps
    while not urgent.num_sampled and sim.engine.num_steps < spawned + 1000:
        sim.step()
    assert sim.engine.num_steps - spawned <= MIN_RUN_STEPS + 1


def test_renice_takes_effect_from_the_next_step() -> None:
    running = [Request(0.0, 16, 400, nice=-10) for _ in range(2)]
    waiting = [Request(at_step(1), 16, 8), Request(at_step(2), 16, 8)]
    sim = Simulation("priority", [*running, *waiting], max_num_seqs=2, cost=CHEAP)
    while len(sim.processes) < 4:
        sim.step()
    sim.engine.renice(sim.processes[3].pid, -20)
    result = sim.run()
    first, second = result.outcomes[2], result.outcomes[3]
    assert (second.started_step or 0) <= second.spawned_step + MIN_RUN_STEPS + 1
    assert (second.started_step or 0) < (first.started_step or 0)


# -- quotas ------------------------------------------------------------------------


def test_a_uid_over_its_process_quota_waits_and_root_does_not() -> None:
    workload = [Request(0.0, 16, 20, uid=1000) for _ in range(5)] + long_jobs(3, output=20)
    sim = Simulation("fcfs", workload, max_num_seqs=8, quota_procs=2, cost=CHEAP)
    while not sim.is_done:
        sim.step()
        assert sum(p.uid == 1000 for p in sim.engine.scheduler.running) <= 2
    result = sim.result()
    assert result.is_complete
    assert [o.started_step for o in result.outcomes[5:]] == [1, 1, 1]  # root: no quota


def test_a_spawn_over_the_process_quota_fails_with_ebusy_when_asked_to() -> None:
    sim = Simulation("fcfs", [Request(0.0, 16, 20, uid=1000) for _ in range(2)], cost=CHEAP)
    sim.step()
    live = list(sim.processes.values())
    with pytest.raises(Busy) as raised:
        Quotas(max_procs=2, action="fail").check_spawn(1000, live, 16, 16)
    assert raised.value.code == "EBUSY"
    Quotas(max_procs=2, action="fail").check_spawn(1001, live, 16, 16)  # another uid
    Quotas(max_procs=2, action="wait").check_spawn(1000, live, 16, 16)  # it will wait


def test_a_uid_never_holds_more_pages_than_its_quota() -> None:
    workload = [Request(0.0, 16, 200, uid=1000) for _ in range(2)]
    sim = Simulation("fcfs", workload, quota_pages=4, cost=CHEAP)
    while not sim.is_done:
        sim.step()
        held = sum(len(p.block_table) for p in sim.engine.scheduler.running)
        assert held <= 4
