"""Native CPU kernels: C sources shipped with the driver, built once with the system's C
compiler and loaded through ctypes. ``csrc/paged_decode.c`` attends decode tokens
over pages in place; ``csrc/fused_ops.c`` fuses the residual add with RMSNorm, and
rotary embedding with the KV store.

The build is cached under ``<data_dir>/native/``, keyed by a hash of the
source, the compiler command and this CPU's feature flags (the code is built
for the CPU it runs on). Building takes about a second; a machine without a
C compiler or OpenMP runs the torch reference path instead, with one warning.
The library links the same OpenMP runtime (``libgomp.so.1``) torch has
already loaded, so both share one thread pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import shlex
import subprocess
import tempfile
import threading
from functools import cache
from pathlib import Path

import torch

from llmos.drivers.loaders.datadir import resolve_data_dir
from llmos.syscalls.errors import InvalidArgument

log = logging.getLogger(__name__)

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / name for name in ("paged_decode.c", "fused_ops.c")]
HEADERS = [CSRC / "storage.h"]
FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", "-shared", "-fPIC", "-std=c11"]
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1}
_lock = threading.Lock()


def compiler() -> list[str]:
    """The C compiler command: ``$CC``, else ``cc``."""
    return shlex.split(os.environ.get("CC", "cc"))


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def library_path(build_dir: Path | None = None) -> Path:
    """Where the built library for this source, compiler and CPU lives
    (``build_dir``, else ``<data_dir>/native``)."""
    key = hashlib.sha256()
    for source in SOURCES + HEADERS:
        key.update(source.read_bytes())
    key.update(" ".join(compiler() + FLAGS).encode())
    key.update(_cpu_flags().encode())
    folder = build_dir or resolve_data_dir() / "native"
    return folder / f"llmos_native-{key.hexdigest()[:16]}.so"


def build(target: Path) -> None:
    """Compile the source into ``target`` (atomically: a temporary file, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        command = [*compiler(), *FLAGS, "-o", tmp, *map(str, SOURCES), "-lm"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise OSError(f"{shlex.join(command)} failed: {done.stderr.strip()[-400:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for stale in target.parent.glob("llmos_native-*.so"):  # builds of older sources
        if stale != target:
            with contextlib.suppress(OSError):  # a process that loaded it keeps its mapping
                stale.unlink()


@cache
def load_library(build_dir: Path | None = None) -> ctypes.CDLL | None:
    """The built library (building it first if needed), or None where it cannot be built."""
    with _lock:
        try:
            path = library_path(build_dir)
            if not path.exists():
                build(path)
            lib = ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("native CPU kernels unavailable, using the torch path: %s", exc)
            return None
    _declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    ptr, i32, i64, f32 = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.c_float
    lib.llmos_paged_decode.restype = ctypes.c_int
    lib.llmos_paged_decode.argtypes = [ptr] * 5 + [i32, i64, i64, i64] + [i32] * 6 + [f32, i32]
    lib.llmos_add_rms_norm.restype = None
    lib.llmos_add_rms_norm.argtypes = [ptr] * 4 + [i64, i64, f32, i32, i32, i32]
    lib.llmos_rope_store.restype = None
    lib.llmos_rope_store.argtypes = [
        ptr,
        i64,
        i32,
        i32,
        i32,
        ptr,
        ptr,
        ptr,
        ptr,
        ptr,
        i64,
        i32,
        i32,
    ]


class NativeDecode:
    """Paged decode attention through the native library (CPU, float32 or bfloat16)."""

    def __init__(self, lib: ctypes.CDLL, window: int | None) -> None:
        self._fn = lib.llmos_paged_decode
        self._window = window or 0

    @staticmethod
    def supports(device: torch.device, dtype: torch.dtype) -> bool:
        """Whether the kernel can run on this device and dtype."""
        return device.type == "cpu" and dtype in DTYPE_CODES

    def __call__(
        self,
        q: torch.Tensor,
        layer_cache: torch.Tensor,
        tables: torch.Tensor,
        lens: torch.Tensor,
        page_size: int,
    ) -> torch.Tensor:
        """Attend q [B, h, d] over each row's context; tables [B, W] and lens [B] int32."""
        batch, heads, head_dim = q.shape
        if q.stride(2) != 1 or q.stride(1) != head_dim:  # rows may be apart, heads not
            q = q.contiguous()
        out = torch.empty((batch, heads, head_dim), dtype=q.dtype)
        status = self._fn(
            q.data_ptr(),
            layer_cache.data_ptr(),
            out.data_ptr(),
            tables.data_ptr(),
            lens.data_ptr(),
            batch,
            q.stride(0),
            tables.shape[1],
            layer_cache.shape[2],
            heads,
            layer_cache.shape[1],
            head_dim,
            page_size,
            self._window,
            DTYPE_CODES[q.dtype],
            head_dim**-0.5,
            torch.get_num_threads(),
        )
        if status != 0:
            raise MemoryError("paged decode attention: out of scratch memory")
        return out


class FusedOps:
    """The fused block kernels (CPU, float32 or bfloat16, contiguous tensors)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._norm = lib.llmos_add_rms_norm
        self._rope = lib.llmos_rope_store

    def add_rms_norm(
        self,
        residual: torch.Tensor,
        delta: torch.Tensor | None,
        weight: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        """``weight * norm(residual)``; with ``delta``, first ``residual += delta`` in place."""
        dim = residual.shape[-1]
        out = torch.empty_like(residual)
        self._norm(
            residual.data_ptr(),
            None if delta is None else delta.data_ptr(),
            out.data_ptr(),
            weight.data_ptr(),
            residual.numel() // dim,
            dim,
            eps,
            DTYPE_CODES[residual.dtype],
            DTYPE_CODES[weight.dtype],
            torch.get_num_threads(),
        )
        return out

    def rope_store(
        self,
        qkv: torch.Tensor,
        heads: int,
        kv_heads: int,
        tables: tuple[torch.Tensor, torch.Tensor],
        positions: torch.Tensor,
        slots: torch.Tensor,
        layer_cache: torch.Tensor,
    ) -> None:
        """Rotate q and k of ``qkv`` [T, (h + 2 kvh) d] in place by the float32 cos/sin
        ``tables`` at ``positions``, then store k and v at ``slots`` of ``layer_cache``."""
        cos, sin = tables
        self._rope(
            qkv.data_ptr(),
            qkv.shape[0],
            heads,
            kv_heads,
            layer_cache.shape[-1],
            cos.data_ptr(),
            sin.data_ptr(),
            positions.data_ptr(),
            slots.data_ptr(),
            layer_cache.data_ptr(),
            layer_cache.shape[2],
            DTYPE_CODES[qkv.dtype],
            torch.get_num_threads(),
        )


def fused_ops(
    choice: str, device: torch.device, dtype: torch.dtype, build_dir: Path | None = None
) -> FusedOps | None:
    """The fused block kernels where the ``attention`` setting allows native code and they
    run (CPU, float32 or bfloat16); None means the torch ops."""
    if choice == "torch" or not NativeDecode.supports(device, dtype):
        return None
    lib = load_library(build_dir)
    return None if lib is None else FusedOps(lib)


def decode_kernel(
    choice: str,
    device: torch.device,
    dtype: torch.dtype,
    window: int | None,
    build_dir: Path | None = None,
) -> NativeDecode | None:
    """The decode kernel the ``attention`` setting asks for: None means the torch path.

    ``auto`` takes the native kernel where it runs (CPU, float32 or bfloat16)
    and builds; ``native`` insists on it (InvalidArgument where it cannot run).
    """
    if choice not in ("auto", "native", "torch"):
        raise InvalidArgument(f"attention must be auto, native or torch, not {choice!r}")
    if choice == "torch":
        return None
    if not NativeDecode.supports(device, dtype):
        if choice == "native":
            raise InvalidArgument(
                f"native attention runs on the CPU in float32 or bfloat16, not {device} {dtype}"
            )
        return None
    lib = load_library(build_dir)
    if lib is None:
        if choice == "native":
            raise InvalidArgument("native attention: the C kernel could not be built (see the log)")
        return None
    return NativeDecode(lib, window)
