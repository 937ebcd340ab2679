"""EngineConfig: every setting of the engine loop and its driver."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EngineConfig(BaseModel):
    """Engine settings; the daemon's configuration embeds these."""

    driver: str = Field("torch", description="the model driver (plugins may add more)")
    dtype: str = "bfloat16"
    device: str = "cpu"
    page_size: int = Field(16, ge=1, le=1024)
    kv_budget: float | int = Field(
        0.2, description="KV pool size: bytes, or a fraction of free memory (0, 1]"
    )
    max_model_len: int | None = Field(None, ge=2)
    attention: Literal["auto", "native", "torch"] = Field(
        "auto",
        description="decode attention: native CPU kernel, torch reference path, or auto "
        "(native where it builds, else torch)",
    )
    max_num_seqs: int = Field(64, ge=1)
    max_num_batched_tokens: int = Field(512, ge=1)
    host_swap: float | int = Field(
        0.1, description="host swap tier: bytes, or a fraction of available RAM; 0 for none"
    )
    disk_swap: int = Field(1 << 30, ge=0, description="disk swap tier in bytes; 0 for none")
    prefix_cache: bool = True
    prefix_salt_per_uid: bool = Field(
        False, description="keep each uid's cached prefixes to itself"
    )
    sched: str = Field("fcfs", description="scheduling policy: fcfs, priority, fair, mlfq")
    min_run_steps: int = Field(4, ge=0, description="steps a process runs before preemption")
    quota_procs: int | None = Field(None, ge=1, description="running processes per uid")
    quota_pages: int | None = Field(None, ge=1, description="device pages per uid")
    quota_action: Literal["wait", "fail"] = "wait"
