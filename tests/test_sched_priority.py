"""The ``priority`` policy's aging and the ``fair`` policy's counter lift, as units (a
policy ranks plain Process records; no engine), then aging in a simulation
(tests/sim_driver.py)."""

from __future__ import annotations

from sim_driver import Request, Simulation, StepCost

from llmos.kernel.policies import Fair, Priority
from llmos.kernel.process import Process, ProcessState
from llmos.syscalls.sampling import SamplingParams

AGING_STEPS = 32
CHEAP = StepCost(fixed=0.01, per_token=0.0)


def proc(pid: int, *, nice: int = 0, uid: int = 0) -> Process:
    return Process(pid, SamplingParams(), [1, 2, 3], 3, None, None, uid=uid, nice=nice)


def tick(policy: Priority | Fair, steps: int) -> None:
    for _ in range(steps):
        policy.on_step()


def test_a_waiting_process_gains_one_whole_level_per_aging_steps() -> None:
    policy, process = Priority(AGING_STEPS), proc(1, nice=5)
    policy.on_arrive(process)
    tick(policy, AGING_STEPS - 1)
    assert policy.level(process) == 5
    tick(policy, 1)
    assert policy.level(process) == 4
    tick(policy, 10 * AGING_STEPS)
    assert policy.level(process) == -6


def test_a_running_process_keeps_its_boost_and_gives_it_back_as_it_runs() -> None:
    policy, process = Priority(AGING_STEPS), proc(1, nice=19)
    policy.on_arrive(process)
    tick(policy, 19 * AGING_STEPS)
    policy.on_run(process)
    assert policy.level(process) == 0
    tick(policy, AGING_STEPS)
    assert policy.level(process) == 1
    tick(policy, 100 * AGING_STEPS)
    assert policy.level(process) == 19  # never worse than its nice
    policy.on_arrive(process)  # preempted: it ages again from its nice
    tick(policy, AGING_STEPS)
    assert policy.level(process) == 18


def test_boost_never_lifts_a_process_past_nice_minus_20() -> None:
    policy, process = Priority(AGING_STEPS), proc(1, nice=0)
    policy.on_arrive(process)
    tick(policy, 1000 * AGING_STEPS)
    assert policy.level(process) == -20
    policy.on_run(process)
    tick(policy, AGING_STEPS)
    assert policy.level(process) == -19  # gives back from -20, not from -1000


def test_only_a_better_nice_preempts_aging_alone_does_not() -> None:
    policy = Priority(AGING_STEPS)
    running, aged, urgent = proc(1, nice=0), proc(2, nice=0), proc(3, nice=-1)
    for process in (running, aged, urgent):
        policy.on_arrive(process)
    policy.on_run(running)
    tick(policy, 10 * AGING_STEPS)
    assert policy.level(aged) < policy.level(running)
    assert not policy.may_preempt(aged, running)  # same nice: it waits for a free slot
    assert policy.may_preempt(urgent, running)


def test_fair_lifts_a_uid_that_had_nothing_queued_to_the_least_busy_counter() -> None:
    policy = Fair()
    busy, light = proc(1, uid=1), proc(2, uid=2)
    policy.on_arrive(busy)
    policy.on_arrive(light)
    busy.state = light.state = ProcessState.RUNNING
    policy.on_served(busy, 0, 500)  # uid 2 runs but asks for less meanwhile
    policy.on_served(light, 0, 10)
    again = proc(3, uid=2)
    policy.on_arrive(again)  # uid 2 had a process running, none queued: lifted
    assert policy.service[2] == policy.service[1] == 1000.0
    policy.on_served(busy, 0, 50)
    policy.on_arrive(proc(4, uid=2))  # uid 2 has one queued: no lift
    assert policy.service[2] == 1000.0


def test_fair_never_lowers_a_counter() -> None:
    policy = Fair()
    heavy = proc(1, uid=1)
    policy.on_arrive(heavy)
    policy.on_served(heavy, 0, 100)
    policy.on_exit(heavy)
    policy.on_arrive(proc(2, uid=1))  # nobody else busy
    assert policy.service[1] == 200.0


def test_a_process_admitted_by_aging_runs_aging_steps_before_better_work_retakes_it() -> None:
    """One slot, nice-0 jobs always queued: the nice-19 one waits 19 levels, then keeps
    its slot for ``AGING_STEPS`` steps while its boost drains, then yields to nice 0."""
    stream = [Request(0.01 * 8 * i - 0.005, 16, 8) for i in range(300)]
    low = Request(0.0, 16, 200, nice=19)
    sim = Simulation("priority", [low, *stream], max_num_seqs=1, cost=CHEAP)
    process = None
    while process is None or not process.num_preemptions:
        sim.step()
        process = sim.processes.get(0)
    started = sim.outcomes[0].started_step or 0
    assert 19 * AGING_STEPS <= started <= 19 * AGING_STEPS + 16
    # it ran in steps ``started`` to ``started + 31`` and was preempted planning the next
    assert sim.engine.num_steps - started == AGING_STEPS
