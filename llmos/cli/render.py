"""Text output: rich tables and human units for what the kernel replies.

Pure functions from reply structs to renderables; the commands print them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from llmos.syscalls.replies import MeminfoReply, ModelInfo, PoolInfo, ProcInfo, SysinfoReply

MISSING = "-"
PS_COLUMNS = (
    "PID", "PPID", "UID", "MODEL", "STATE", "NICE", "PROMPT", "GEN", "PAGES", "WAIT", "TTFT",
    "STATUS",
)  # fmt: skip
NUMERIC_PS_COLUMNS = frozenset(
    {"PID", "PPID", "UID", "NICE", "PROMPT", "GEN", "PAGES", "WAIT", "TTFT", "AGE"}
)


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr), so redirected streams are honoured."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def format_bytes(num_bytes: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m 15s``; ``90061`` -> ``1d 1h``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{secs}s"


def format_count(count: int) -> str:
    """``135_000_000`` -> ``135M``; ``1_700_000_000`` -> ``1.7B``."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(count)


def format_timestamp(unix_seconds: float) -> str:
    """A Unix time as local ``YYYY-mm-dd HH:MM:SS``; ``-`` for 0 (not yet)."""
    if not unix_seconds:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_seconds))


def proc_age(proc: ProcInfo, now: float) -> str:
    """How long ago ``proc`` was created."""
    return format_duration(max(0.0, now - proc.created_at)) if proc.created_at else MISSING


def ps_row(proc: ProcInfo, now: float) -> list[str]:
    """One ``ps`` row, in :data:`PS_COLUMNS` order, then AGE."""
    values = (proc.pid, proc.ppid, proc.uid, proc.model, proc.state, proc.nice)
    counts = (proc.num_prompt_tokens, proc.num_generated_tokens, proc.num_pages)
    times = (
        format_duration(proc.queue_seconds),
        format_duration(proc.ttft) if proc.ttft else MISSING,
    )
    status = proc.exit_status or MISSING
    return [*map(str, values), *map(str, counts), *times, status, proc_age(proc, now)]


def ps_table(procs: Iterable[ProcInfo], now: float | None = None) -> Table:
    """The process table."""
    now = time.time() if now is None else now
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in (*PS_COLUMNS, "AGE"):
        table.add_column(name, justify="right" if name in NUMERIC_PS_COLUMNS else "left")
    for proc in procs:
        table.add_row(*ps_row(proc, now))
    return table


def key_value_text(rows: Iterable[tuple[str, str]]) -> str:
    """Aligned ``key  value`` lines."""
    pairs = list(rows)
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in pairs)


def proc_rows(proc: ProcInfo) -> list[tuple[str, str]]:
    """Everything about one process, as key/value pairs."""
    times = ("created_at", "started_at", "ended_at")
    rows = []
    for field in proc.__struct_fields__:
        value = getattr(proc, field)
        text = format_timestamp(value) if field in times else _plain(value)
        rows.append((field, text))
    return rows


def sysinfo_rows(info: SysinfoReply) -> list[tuple[str, str]]:
    """The kernel at a glance, as key/value pairs."""
    return [
        ("version", f"{info.version} (protocol {info.protocol})"),
        ("pid", f"{info.kernel_pid} (uid {info.kernel_uid})"),
        ("uptime", format_duration(info.uptime)),
        ("device", info.device),
        ("driver", info.driver),
        ("policy", info.policy),
        ("models", ", ".join(info.models) or "none loaded"),
    ]


def memory_rows(mem: MeminfoReply) -> list[tuple[str, str]]:
    """Host, kernel and device memory, as key/value pairs."""
    device = mem.device
    if mem.device_total:
        device += f": {format_bytes(mem.device_used)} used of {format_bytes(mem.device_total)}"
    return [
        (
            "host",
            f"{format_bytes(mem.host_total)} total, {format_bytes(mem.host_available)} available",
        ),
        ("kernel", f"{format_bytes(mem.kernel_rss)} resident"),
        ("device", device),
    ]


def pools_table(pools: Iterable[PoolInfo]) -> Table:
    """One row per model's KV pool."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("MODEL")
    for name in ("PAGES", "USED", "FREE", "PAGE SIZE", "PAGE BYTES", "POOL BYTES"):
        table.add_column(name, justify="right")
    for pool in pools:
        counts = (pool.num_pages, pool.num_used, pool.num_free, pool.page_size)
        sizes = (format_bytes(pool.page_bytes), format_bytes(pool.num_pages * pool.page_bytes))
        table.add_row(pool.model, *map(str, counts), *sizes)
    return table


def models_table(models: Iterable[ModelInfo]) -> Table:
    """One row per loaded model or preset."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("NAME", "LOADED", "ARCH", "DTYPE"):
        table.add_column(name)
    for name in ("PARAMS", "CTX", "PROCS", "KEEP-ALIVE", "IDLE"):
        table.add_column(name, justify="right")
    for model in models:
        table.add_row(*model_row(model))
    return table


def model_row(model: ModelInfo) -> list[str]:
    """One ``models`` row."""
    keep_alive = MISSING if model.keep_alive is None else format_duration(model.keep_alive)
    idle = format_duration(model.idle_for) if model.loaded else MISSING
    return [
        model.name,
        "yes" if model.loaded else "no",
        model.arch or MISSING,
        model.dtype or MISSING,
        format_count(model.num_params) if model.num_params else MISSING,
        str(model.max_model_len) if model.max_model_len else MISSING,
        str(model.num_processes),
        keep_alive,
        idle,
    ]


def describe_model(model: ModelInfo) -> str:
    """A one-line summary: ``smollm2 (llama, bfloat16, 135M params, ctx 8192)``."""
    details = [model.arch, model.dtype]
    if model.num_params:
        details.append(f"{format_count(model.num_params)} params")
    if model.max_model_len:
        details.append(f"ctx {model.max_model_len}")
    described = ", ".join(detail for detail in details if detail)
    return f"{model.name} ({described})" if described else model.name


def _plain(value: object) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
