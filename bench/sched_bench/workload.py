"""The mixed workload: Poisson arrivals of short and long requests from a heavy and a light uid."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sim_driver import Request

POLICIES = ("fcfs", "priority", "fair", "mlfq")

HEAVY, LIGHT = 1001, 1002


@dataclass(frozen=True)
class Mix:
    """The workload: how long requests arrive, how many per second, their sizes."""

    duration: float
    rate: float  # requests per second, both uids together
    max_num_seqs: int = 32
    light_fraction: float = 1 / 11  # a 10:1 load
    short_fraction: float = 0.5
    short: tuple[tuple[int, int], tuple[int, int]] = ((16, 64), (8, 32))  # prompt, output
    long: tuple[tuple[int, int], tuple[int, int]] = ((128, 512), (64, 256))


MIXES = {
    "sim": Mix(duration=20.0, rate=32.0),
    "sim-quick": Mix(duration=8.0, rate=32.0),
    "real": Mix(duration=5.0, rate=32.0),
    "real-quick": Mix(duration=2.0, rate=32.0, long=((64, 256), (32, 128))),
}


def make_workload(mix: Mix, seed: int) -> list[Request]:
    """Poisson arrivals over ``mix.duration`` seconds (seeded)."""
    rng = random.Random(seed)
    requests: list[Request] = []
    arrival = rng.expovariate(mix.rate)
    while arrival < mix.duration:
        uid = LIGHT if rng.random() < mix.light_fraction else HEAVY
        is_short = rng.random() < mix.short_fraction
        (prompt, output), label = (mix.short, "short") if is_short else (mix.long, "long")
        size = rng.randint(*prompt), rng.randint(*output)
        requests.append(Request(arrival, *size, uid=uid, label=label))
        arrival += rng.expovariate(mix.rate)
    return requests
