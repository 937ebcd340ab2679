"""Loading models without stalling the engine: weights load in a worker thread.

A load reads and converts weights and builds the engine in a worker thread;
only installing the finished engine runs on the engine thread. Concurrent
loads of one name share one load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from llmos.kernel.config import EngineConfig
from llmos.kernel.core import KernelCore
from llmos.kernel.engine import Engine
from llmos.kernel.engine_thread import EngineThread
from llmos.kernel.models import canonical_name
from llmos.kernel.own_thread import in_own_thread
from llmos.plugins.registry import ModelPreset
from llmos.syscalls.replies import ModelInfo

log = logging.getLogger("llmos.kernel")


class ModelLoader:
    """Makes models resident on demand."""

    def __init__(
        self,
        engine_thread: EngineThread,
        config: EngineConfig,
        data_dir: Path | None,
        default_keep_alive: float | None,
        default_model: str | None = None,
        presets: Mapping[str, ModelPreset] | None = None,
    ) -> None:
        self.engine_thread = engine_thread
        self.config = config
        self.data_dir = data_dir
        self.default_keep_alive = default_keep_alive
        self.default_model = default_model
        self.presets = presets or {}
        self._locks: dict[str, asyncio.Lock] = {}

    def resolve(self, name: str) -> str:
        """Presets name their model; ``default`` is the kernel's first boot model (the
        registry's default if it booted with none)."""
        preset = self.presets.get(name)
        if preset is not None:
            name = preset.model
        if name == "default" and self.default_model:
            return self.default_model
        return name

    async def ensure(self, name: str, keep_alive: float | None = None) -> ModelInfo:
        """The model, loading it first if it is not resident."""
        name = self.resolve(name)
        core: KernelCore = self.engine_thread.core
        lock = self._locks.setdefault(canonical_name(name), asyncio.Lock())
        async with lock:
            info = await self.engine_thread.call(core.model_info, name)
            if info is not None and keep_alive is None:
                return info
            engine = None if info is not None else await self._build(name)
            if keep_alive is None:
                keep_alive = self.default_keep_alive
            return await self.engine_thread.call(self._install, name, engine, keep_alive)

    def _install(self, name: str, engine: Engine | None, keep_alive: float | None) -> ModelInfo:
        core = self.engine_thread.core
        if engine is None:
            engine = core.models.get(name).engine
        return core.install(name, engine, keep_alive)

    async def _build(self, name: str) -> Engine:
        log.info("loading model %s", name)
        engine = await in_own_thread(
            Engine.from_model, name, self.config, self.data_dir, name="llmos-load"
        )
        log.info(
            "loaded %s: %d KV pages of %d tokens",
            name,
            engine.driver.num_pages,
            engine.memory.page_size,
        )
        return engine
