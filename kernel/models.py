"""Loaded models: the kernel's executable images, kept alive a while after last use.

Owned by the engine thread. A model is loaded (in a worker thread, see
:mod:`llmos.kernel.loader`), installed here, used by processes, and unloaded
explicitly or once it has been idle for its keep-alive time (``None`` keeps it
for the kernel's lifetime).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from llmos.drivers.loaders.registry import ALIASES
from llmos.kernel.engine import Engine
from llmos.syscalls.errors import Busy, NotFound
from llmos.syscalls.replies import ModelInfo


def canonical_name(name: str) -> str:
    """The name a model is loaded under (aliases such as ``default`` resolved)."""
    return ALIASES.get(name, name)


@dataclass
class LoadedModel:
    """One resident model and its engine."""

    name: str
    engine: Engine
    keep_alive: float | None
    loaded_at: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)

    @property
    def num_live(self) -> int:
        return sum(1 for p in self.engine.processes.values() if p.is_live)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def is_idle_expired(self, now: float) -> bool:
        if self.keep_alive is None or self.num_live:
            return False
        return now - self.last_used >= self.keep_alive

    def info(self, now: float) -> ModelInfo:
        driver = self.engine.driver
        config = driver.config
        return ModelInfo(
            name=self.name,
            loaded=True,
            source=str(driver.model_name),
            arch=str(config.model_type),
            dtype=str(driver.dtype).removeprefix("torch."),
            num_params=int(driver.num_params),
            max_model_len=self.engine.max_model_len,
            num_processes=self.num_live,
            keep_alive=self.keep_alive,
            idle_for=0.0 if self.num_live else now - self.last_used,
        )


class ModelTable:
    """Resident models by canonical name."""

    def __init__(self) -> None:
        self.models: dict[str, LoadedModel] = {}

    def __contains__(self, name: str) -> bool:
        return canonical_name(name) in self.models

    def get(self, name: str) -> LoadedModel:
        model = self.models.get(canonical_name(name))
        if model is None:
            raise NotFound(f"model {name!r} is not loaded")
        return model

    def install(self, name: str, engine: Engine, keep_alive: float | None) -> LoadedModel:
        """Make a freshly loaded model resident (a second load of a name keeps the first)."""
        name = canonical_name(name)
        if name not in self.models:
            self.models[name] = LoadedModel(name, engine, keep_alive)
        model = self.models[name]
        model.keep_alive = keep_alive if keep_alive is None or keep_alive >= 0 else None
        model.touch()
        return model

    def can_unload(self, name: str) -> LoadedModel:
        model = self.get(name)
        if model.num_live:
            raise Busy(f"model {model.name!r} has {model.num_live} live processes")
        return model

    def unload(self, name: str) -> LoadedModel:
        """Drop a model no live process uses; its weights and KV pool are freed."""
        model = self.can_unload(name)
        del self.models[model.name]
        return model

    def expired(self, now: float) -> list[str]:
        return [name for name, model in self.models.items() if model.is_idle_expired(now)]

    @property
    def names(self) -> list[str]:
        return sorted(self.models)
