"""KernelSettings: every setting of the daemon, from ``LLMOS_*`` variables and a TOML file.

Precedence, highest first: arguments given in code (the CLI's flags), the
environment (``LLMOS_SOCKET``, ``LLMOS_MODELS``, ...), the TOML file named by
``LLMOS_CONFIG`` (keys as the field names), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from llmos.kernel.config import EngineConfig
from llmos.syscalls.framing import DEFAULT_MAX_FRAME
from llmos.syscalls.paths import default_socket_path


class KernelSettings(BaseSettings):
    """The daemon's configuration."""

    model_config = SettingsConfigDict(env_prefix="LLMOS_", extra="forbid")

    socket: Path = Field(default_factory=default_socket_path)
    socket_group: str | None = Field(None, description="group allowed on the socket (mode 0660)")
    data_dir: Path | None = None
    models: list[str] = Field(default_factory=lambda: ["default"], description="loaded at boot")
    driver: str = "torch"
    dtype: str = "bfloat16"
    device: str = "cpu"
    page_size: int = Field(16, ge=1, le=1024)
    kv_budget: float | int = 0.2
    max_model_len: int | None = Field(None, ge=2)
    attention: Literal["auto", "native", "torch"] = Field(
        "auto", description="native CPU kernels where they build (auto), always, or never"
    )
    max_num_seqs: int = Field(64, ge=1)
    max_num_batched_tokens: int = Field(512, ge=1)
    host_swap: float | int = Field(0.1, description="host swap: bytes or a fraction of free RAM")
    disk_swap: int = Field(1 << 30, ge=0, description="disk swap file size in bytes")
    prefix_cache: bool = True
    prefix_salt_per_uid: bool = False
    sched: str = Field("fcfs", description="scheduling policy: fcfs, priority, fair, mlfq")
    min_run_steps: int = Field(4, ge=0)
    quota_procs: int | None = Field(None, ge=1, description="running processes per uid")
    quota_pages: int | None = Field(None, ge=1, description="device pages per uid")
    quota_action: Literal["wait", "fail"] = "wait"
    keep_alive: float = Field(300.0, description="seconds a model stays loaded after last use")
    zombie_ttl: float = Field(600.0, gt=0, description="seconds an unwaited zombie is kept")
    max_frame: int = Field(DEFAULT_MAX_FRAME, ge=1024)
    stream_buffer: int = Field(4096, ge=16, description="events a slow subscriber may lag")
    shutdown_timeout: float = Field(10.0, gt=0)
    hibernate: bool = Field(False, description="on SIGTERM, hibernate running processes too")
    plugins: str | None = Field(
        None, description="plugins to load: unset all, 'none', or a comma-separated list"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = os.environ.get("LLMOS_CONFIG")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)

    def engine_config(self) -> EngineConfig:
        """The engine settings within these."""
        return EngineConfig(
            driver=self.driver,
            dtype=self.dtype,
            device=self.device,
            page_size=self.page_size,
            kv_budget=self.kv_budget,
            max_model_len=self.max_model_len,
            attention=self.attention,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            host_swap=self.host_swap,
            disk_swap=self.disk_swap,
            prefix_cache=self.prefix_cache,
            prefix_salt_per_uid=self.prefix_salt_per_uid,
            sched=self.sched,
            min_run_steps=self.min_run_steps,
            quota_procs=self.quota_procs,
            quota_pages=self.quota_pages,
            quota_action=self.quota_action,
        )
