"""Replies: what the kernel answers, one tagged Struct per kind of answer."""

from __future__ import annotations

import msgspec


class Reply(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every reply; ``id`` is the request's."""

    id: int = 0


class Error(Reply, tag="error"):
    """A failed call: an errno-like ``code`` (``ENOENT``, ``EPERM``, ...) and a message."""

    code: str
    message: str


class Ok(Reply, tag="ok"):
    """A call that succeeded with nothing more to say."""


class HelloReply(Reply, tag="hello"):
    """The kernel's side of the handshake, and who it thinks the caller is."""

    version: int
    kernel_version: str
    uid: int


class Spawned(Reply, tag="spawned"):
    """The pid of a new process."""

    pid: int


class ProcInfo(msgspec.Struct, kw_only=True):
    """One row of the process table (times are Unix seconds; 0 = not yet)."""

    pid: int
    ppid: int
    uid: int
    model: str
    state: str
    nice: int
    is_chat: bool = False
    created_at: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    num_prompt_tokens: int = 0
    num_generated_tokens: int = 0
    num_prefill_tokens: int = 0
    num_pages: int = 0
    num_preemptions: int = 0
    num_turns: int = 1
    num_cached_tokens: int = 0
    num_page_ins: int = 0
    num_page_outs: int = 0
    num_swapped: int = 0
    queue_seconds: float = 0.0
    ttft: float = 0.0
    tpot: float = 0.0
    device_seconds: float = 0.0
    exit_status: str | None = None
    error: str | None = None


class PageEntry(msgspec.Struct, kw_only=True):
    """One logical page of a process: where it lives and who shares it."""

    index: int
    tier: str
    frame: int
    num_tokens: int
    refcount: int = 1
    is_cached: bool = False


class ProcReply(Reply, tag="proc"):
    """``proc`` of one process (with its page map when asked)."""

    proc: ProcInfo
    pages: list[PageEntry] = msgspec.field(default_factory=list)


class Forked(Reply, tag="forked"):
    """The pids of the children."""

    pids: list[int]


class PsReply(Reply, tag="ps"):
    """The rows ``ps`` asked for, by pid."""

    procs: list[ProcInfo]


class Waited(Reply, tag="waited"):
    """A process that exited (and is now reaped): status, text of its last turn, tokens."""

    proc: ProcInfo
    text: str
    token_ids: list[int]


class TierInfo(msgspec.Struct, kw_only=True):
    """One memory tier of a model's KV cache, in pages."""

    tier: str
    num_pages: int
    num_free: int
    num_used: int
    num_cached: int = 0
    num_shared: int = 0


class PoolInfo(msgspec.Struct, kw_only=True):
    """One model's KV pages: the device pool (``num_*``), every tier, and counters.

    ``num_free`` counts pages free now or held only by the prefix cache
    (evictable). ``fragmentation`` is the share of reserved token slots that
    hold no token yet.
    """

    model: str
    page_size: int
    page_bytes: int
    num_pages: int
    num_free: int
    num_used: int
    tiers: list[TierInfo] = msgspec.field(default_factory=list)
    num_page_ins: int = 0
    num_page_outs: int = 0
    num_prefix_hits: int = 0
    num_prefix_misses: int = 0
    prefix_hit_rate: float = 0.0
    fragmentation: float = 0.0


class MeminfoReply(Reply, tag="meminfo"):
    """Memory, in bytes, and the KV pools."""

    host_total: int
    host_available: int
    kernel_rss: int
    device: str
    device_total: int
    device_used: int
    pools: list[PoolInfo]


class UidService(msgspec.Struct, kw_only=True):
    """Service one uid received from the kernel's engines."""

    uid: int
    num_prefill_tokens: int = 0
    num_decode_tokens: int = 0
    device_seconds: float = 0.0


class SchedReply(Reply, tag="sched"):
    """The scheduling policy in force, the ones available, and per-uid service."""

    policy: str
    policies: list[str]
    service: list[UidService] = msgspec.field(default_factory=list)


class SysinfoReply(Reply, tag="sysinfo"):
    """The kernel at a glance."""

    version: str
    protocol: int
    driver: str
    device: str
    uptime: float
    policy: str
    kernel_pid: int
    kernel_uid: int
    models: list[str]
    service: list[UidService] = msgspec.field(default_factory=list)


class ModelInfo(msgspec.Struct, kw_only=True):
    """A loaded model, or a preset that can be loaded."""

    name: str
    loaded: bool
    preset: str = ""
    task: str = ""
    source: str = ""
    arch: str = ""
    dtype: str = ""
    num_params: int = 0
    max_model_len: int = 0
    num_processes: int = 0
    keep_alive: float | None = None
    idle_for: float = 0.0


class ModelsReply(Reply, tag="models"):
    """Every loaded model (``plugins`` lists the presets)."""

    models: list[ModelInfo]


class Loaded(Reply, tag="loaded"):
    """A model now resident."""

    model: ModelInfo


class CallResult(Reply, tag="result"):
    """A plugin syscall's result: msgpack of the Struct the plugin declared."""

    name: str
    result: msgspec.Raw


class SyscallInfo(msgspec.Struct, kw_only=True):
    """One plugin syscall: its name, its documentation and its parameters' fields."""

    name: str
    plugin: str
    doc: str = ""
    params: list[str] = msgspec.field(default_factory=list)


class PluginInfo(msgspec.Struct, kw_only=True):
    """A loaded plugin."""

    name: str
    version: str
    hooks: list[str]
    syscalls: list[str] = msgspec.field(default_factory=list)


class PluginsReply(Reply, tag="plugins"):
    """The kernel's plugins, the syscalls they add, and the model presets."""

    plugins: list[PluginInfo]
    syscalls: list[SyscallInfo] = msgspec.field(default_factory=list)
    presets: dict[str, str] = msgspec.field(default_factory=dict)
