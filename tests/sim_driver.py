"""A cost-model test double of the torch driver, and a workload simulator built on it.

:class:`SimDriver` stands in for ``TorchDriver`` under a real :class:`Engine`: the
scheduler, its policies, the memory manager and the accounting run exactly as they
do with a model, but a forward computes nothing. Every step samples the same
non-EOS token and advances a simulated clock by ``fixed + per_token * num_tokens``
seconds (:class:`StepCost`). Schedules never depend on the tokens sampled, so a
simulation is deterministic, and thousands of steps take a second.

:func:`simulate` runs a workload of :class:`Request`\\ s arriving over simulated time
and returns each request's time to first token, each uid's service (overall, and
while every uid was backlogged) and the throughput. :class:`WorkloadRun` does the
same on any engine and :class:`Clock` (bench/sched.py: the real model, wall time).

    result = simulate("fair", [Request(0.0, 32, 16, uid=1), Request(0.1, 300, 64, uid=2)])
    result.ttft(0), result.backlogged_share(1), result.throughput
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmos.kernel.config import EngineConfig
from llmos.kernel.engine import Engine
from llmos.kernel.process import Process
from llmos.syscalls.sampling import SamplingParams

VOCAB_SIZE = 256
TOKEN = 7  # what every step samples: not an end-of-sequence id
W_PREFILL, W_DECODE = 1.0, 2.0  # service weights, as the ``fair`` policy's defaults


class SimTokenizer:
    """A test double of the model tokenizer: ids decode to letters; no special tokens."""

    vocab_size = VOCAB_SIZE
    eos_token_ids: list[int] = []

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) % VOCAB_SIZE for c in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(ord("a") + i % 26) for i in ids)


@dataclass(frozen=True)
class StepCost:
    """Simulated seconds of one step: ``fixed + per_token * num_tokens``.

    The defaults are the default model's (SmolLM2-135M, bfloat16) on the 2-core
    development CPU: ~25 ms for one decode, ~0.6-1.2 ms more per token.
    """

    fixed: float = 0.025
    per_token: float = 0.001

    def seconds(self, num_tokens: int) -> float:
        return self.fixed + self.per_token * num_tokens


class SimDriver:
    """A test double of ``TorchDriver``: no model, no KV pool, a simulated clock.

    It has no swap tiers, so every preemption drops the victim's K/V for
    recompute: whether to swap is the cost model's call on measured wall-clock
    rates, which would make simulations differ from run to run.
    """

    def __init__(
        self,
        num_pages: int = 4096,
        page_size: int = 16,
        *,
        max_model_len: int = 8192,
        cost: StepCost | None = None,
    ) -> None:
        self.tokenizer = SimTokenizer()
        self.num_pages, self.page_size = num_pages, page_size
        self.page_bytes = 1
        self.num_host_pages = self.num_disk_pages = 0
        self.max_model_len = max_model_len
        self.config = None
        self.cost = cost or StepCost()
        self.clock = 0.0  # simulated seconds
        self.num_steps = 0

    def now(self) -> float:
        return self.clock

    def wait_until(self, seconds: float) -> None:
        """Idle until ``seconds`` of simulated time (a no-op if already past)."""
        self.clock = max(self.clock, seconds)

    def new_sampler_state(self, params: SamplingParams) -> None:
        return None

    def copy_sampler_state(self, state: None) -> None:
        return state

    def execute(
        self, items: Sequence[Any], params: Sequence[Any], states: Any, histories: Any
    ) -> list[int]:
        """One forward: advance the clock by the step's cost; sample ``TOKEN`` for each."""
        self.clock += self.cost.seconds(sum(len(item.token_ids) for item in items))
        self.num_steps += 1
        return [TOKEN] * len(params)

    def move_pages(self, moves: Sequence[Any]) -> list[int]:
        return []

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Request:
    """One request of a workload: it arrives at ``arrival`` simulated seconds."""

    arrival: float
    prompt_len: int
    output_len: int
    uid: int = 0
    nice: int = 0
    label: str = ""


@dataclass
class Outcome:
    """What became of one request (times in simulated seconds, steps by the step count)."""

    request: Request
    pid: int = 0
    spawned_step: int = 0  # steps run before it arrived
    started_step: int | None = None  # the step it first joined the running set
    first_token_at: float | None = None
    first_token_step: int | None = None
    finished_at: float | None = None
    finished_step: int | None = None
    num_preemptions: int = 0

    @property
    def ttft(self) -> float:
        assert self.first_token_at is not None, f"request {self.pid} never started"
        return self.first_token_at - self.request.arrival


@dataclass
class SimResult:
    """A finished (or cut-off) simulation."""

    outcomes: list[Outcome]
    seconds: float
    num_steps: int
    service: dict[int, float] = field(default_factory=dict)  # weighted tokens per uid
    backlogged_service: dict[int, float] = field(default_factory=dict)
    num_backlogged_steps: int = 0

    def ttft(self, index: int) -> float:
        return self.outcomes[index].ttft

    @property
    def is_complete(self) -> bool:
        return all(o.finished_at is not None for o in self.outcomes)

    @property
    def num_tokens(self) -> int:
        """Useful tokens: every prompt and every output token once."""
        return sum(o.request.prompt_len + o.request.output_len for o in self.outcomes)

    @property
    def throughput(self) -> float:
        return self.num_tokens / self.seconds

    @property
    def num_preemptions(self) -> int:
        return sum(o.num_preemptions for o in self.outcomes)

    def backlogged_share(self, uid: int) -> float:
        """``uid``'s share of the service given while every uid had work queued."""
        total = sum(self.backlogged_service.values())
        return self.backlogged_service.get(uid, 0.0) / total if total else 0.0


def prompt_ids(index: int, length: int) -> list[int]:
    """Distinct token ids for request ``index`` (no prefix shared with another)."""
    rng = random.Random(index)
    return [rng.randrange(VOCAB_SIZE) for _ in range(length)]


class Clock(Protocol):
    """Where a workload run reads the time, in seconds from its start."""

    def now(self) -> float: ...

    def wait_until(self, seconds: float) -> None:
        """Let time pass up to ``seconds`` (nothing runs meanwhile)."""


class WorkloadRun:
    """Feeds a workload to an engine as time passes on ``clock``, one step at a time, and
    records what became of each request and each uid's service."""

    def __init__(self, engine: Engine, workload: Sequence[Request], clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self.outcomes = [Outcome(request) for request in workload]
        self.processes: dict[int, Process] = {}  # request index -> its process
        self._unfinished: dict[int, Process] = {}
        self._arrivals = sorted(range(len(workload)), key=lambda i: workload[i].arrival)
        self._uids = {r.uid for r in workload}
        self.backlogged_service: dict[int, float] = {}
        self.num_backlogged_steps = 0
        self.is_stuck = False  # work is left that no step can run, and nothing will arrive

    @property
    def is_done(self) -> bool:
        return self.is_stuck or not (self._arrivals or self.engine.has_work)

    def arrive(self) -> None:
        """Spawn every request due by now; with nothing to run, wait for the next."""
        if not self.engine.has_work:
            self._wait_for_next_arrival()
        now = self.clock.now()
        while self._arrivals and self.outcomes[self._arrivals[0]].request.arrival <= now:
            self.spawn(self._arrivals.pop(0))

    def _wait_for_next_arrival(self) -> None:
        if self._arrivals:
            self.clock.wait_until(self.outcomes[self._arrivals[0]].request.arrival)
        else:
            self.is_stuck = self.engine.has_work

    def spawn(self, index: int) -> Process:
        request = self.outcomes[index].request
        params = SamplingParams(temperature=0.0, max_tokens=request.output_len, ignore_eos=True)
        ids = prompt_ids(index, request.prompt_len)
        process = self.engine.add(ids, params, uid=request.uid, nice=request.nice)
        self.processes[index] = self._unfinished[index] = process
        outcome = self.outcomes[index]
        outcome.pid, outcome.spawned_step = process.pid, self.engine.num_steps
        return process

    def step(self) -> None:
        """Admit arrivals, run one engine step, record first tokens, exits and service."""
        self.arrive()
        backlogged = {p.uid for p in self.engine.scheduler.waiting}
        before = self.service()
        num_steps = self.engine.num_steps
        self.engine.step()
        if self.engine.num_steps == num_steps:  # nothing could run: wait for an arrival
            self._wait_for_next_arrival()
            return
        if len(self._uids) > 1 and backlogged >= self._uids:
            self.num_backlogged_steps += 1
            for uid, total in self.service().items():
                gained = total - before.get(uid, 0.0)
                self.backlogged_service[uid] = self.backlogged_service.get(uid, 0.0) + gained
        self._record()

    def _record(self) -> None:
        step, now = self.engine.num_steps, self.clock.now()
        for index, process in list(self._unfinished.items()):
            outcome = self.outcomes[index]
            outcome.num_preemptions = process.num_preemptions
            if outcome.started_step is None and process.started_at is not None:
                outcome.started_step = step
            if outcome.first_token_at is None and process.num_sampled:
                outcome.first_token_at, outcome.first_token_step = now, step
            if process.is_finished:
                outcome.finished_at, outcome.finished_step = now, step
                del self._unfinished[index]

    def service(self) -> dict[int, float]:
        """Weighted tokens served per uid so far (prompt x1, output x2, as ``fair``)."""
        return {
            uid: W_PREFILL * row.num_prefill_tokens + W_DECODE * row.num_decode_tokens
            for uid, row in self.engine.service.items()
        }

    def run(self, max_steps: int = 100_000) -> SimResult:
        """Step until every request finished, or ``max_steps`` steps ran."""
        while not self.is_done and self.engine.num_steps < max_steps:
            self.step()
        return self.result()

    def result(self) -> SimResult:
        return SimResult(
            outcomes=self.outcomes,
            seconds=self.clock.now(),
            num_steps=self.engine.num_steps,
            service=self.service(),
            backlogged_service=dict(self.backlogged_service),
            num_backlogged_steps=self.num_backlogged_steps,
        )


class Simulation(WorkloadRun):
    """A workload run on an engine over a :class:`SimDriver`, in simulated time."""

    def __init__(
        self,
        policy: str,
        workload: Sequence[Request],
        *,
        num_pages: int = 4096,
        cost: StepCost | None = None,
        **config: Any,
    ) -> None:
        self.driver = SimDriver(num_pages, cost=cost)
        settings = EngineConfig(sched=policy, page_size=self.driver.page_size, **config)
        engine = Engine(self.driver, settings)  # type: ignore[arg-type]
        super().__init__(engine, workload, self.driver)


def simulate(
    policy: str, workload: Sequence[Request], *, max_steps: int = 100_000, **settings: Any
) -> SimResult:
    """Run ``workload`` under ``policy`` (engine ``settings`` as :class:`EngineConfig`'s,
    plus ``num_pages`` and ``cost``) to the end; see :class:`SimResult`."""
    return Simulation(policy, workload, **settings).run(max_steps)
