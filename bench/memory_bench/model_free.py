"""Engines over a model-free driver: the kernel's own time, without the model's."""

from __future__ import annotations

from typing import Any

from llmos.kernel.engine import Engine
from llmos.syscalls.sampling import SamplingParams


class ModelFreeDriver:
    """A test double for the torch driver that times the kernel alone: no model, no KV
    pool, every forward samples ``token``. The engine's scheduling, page tables and prefix
    cache run as with the model (schedules do not depend on the tokens sampled)."""

    def __init__(self, real: Any, token: int) -> None:
        self.tokenizer, self.token = real.tokenizer, token
        self.num_pages, self.page_size = real.num_pages, real.page_size
        self.page_bytes = real.page_bytes
        self.max_model_len = real.max_model_len
        self.num_host_pages = self.num_disk_pages = 0

    def new_sampler_state(self, params: SamplingParams) -> None:
        """No sampler state: every forward samples the same token."""
        return None

    def execute(self, items: list[Any], params: list[Any], *_: Any) -> list[int]:
        """One ``token`` per process, without a forward."""
        return [self.token] * len(params)

    def move_pages(self, moves: list[Any]) -> list[int]:
        """Nothing to move: there is no KV pool."""
        return []


def model_free_engines(engines: dict[str, Engine], token: int) -> dict[str, Engine]:
    """Engines configured as ``engines``, each over a model-free driver."""
    return {
        name: Engine(ModelFreeDriver(engine.driver, token), engine.config)  # type: ignore[arg-type]
        for name, engine in engines.items()
    }
